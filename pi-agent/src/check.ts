/**
 * `edgent-agent --check`: can this machine run the agent? Prints the architecture, the runtime
 * versions, whether the model loads (graph checked against its manifest, checksum verified), and
 * the timing of one shipped sample through the final exit. Exits non-zero with the reason on a
 * 32-bit OS, a missing or broken model, or a runtime that does not load.
 */
import { arch, cpus, platform, release, totalmem } from 'node:os'
import { performance } from 'node:perf_hooks'
import { UserError, errorMessage } from '../../src/shared/errors.js'
import { exitPath } from '../../src/shared/contracts/manifest.js'
import { argmax, preprocess } from '../../src/shared/algorithms/preprocess.js'
import { loadManifest, readModelSamples } from '../../src/main/runtime/files.js'
import { OrtExecutor } from '../../src/main/runtime/executor.js'
import { ORT_PACKAGE_VERSION, appVersion } from '../../src/main/runtime/version.js'

export interface CheckReport {
  ok: boolean
  arch: string
  platform: string
  kernel: string
  cpus: number
  cpuModel: string
  memoryBytes: number
  versions: { node: string; onnxruntime: string; agent: string }
  model: { id: string; dir: string; onnxBytes: number; sha256: string } | null
  /** One shipped sample through the final exit: first run (includes session creation) and a warm run. */
  timing: { exit: number; coldMs: number; warmMs: number; label: number; predicted: number } | null
  problems: string[]
}

/** Architectures the agent supports: 64-bit only (onnxruntime-node ships no 32-bit ARM binary). */
export const SUPPORTED_ARCHS = ['arm64', 'x64'] as const

export async function runCheck(
  modelDir: string,
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  machineArch: string = arch()
): Promise<CheckReport> {
  const report: CheckReport = {
    ok: false,
    arch: machineArch,
    platform: platform(),
    kernel: release(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    versions: { node: process.versions.node, onnxruntime: ORT_PACKAGE_VERSION, agent: appVersion() },
    model: null,
    timing: null,
    problems: []
  }
  out(`arch          ${report.arch} (${report.platform} ${report.kernel})`)
  out(`cpu           ${report.cpus} × ${report.cpuModel}, ${(report.memoryBytes / 2 ** 30).toFixed(1)} GiB`)
  out(`node          ${report.versions.node}`)
  out(`onnxruntime   onnxruntime-node ${report.versions.onnxruntime}`)
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(report.arch)) {
    report.problems.push(
      `unsupported architecture ${report.arch}: the agent needs a 64-bit OS (arm64 on a Raspberry Pi: Raspberry Pi OS 64-bit); onnxruntime-node has no ${report.arch} binary`
    )
  }
  if (report.problems.length === 0) {
    const executor = new OrtExecutor()
    try {
      const loaded = loadManifest(modelDir)
      await executor.start()
      const open = await executor.openModel(loaded.dir)
      report.model = { id: open.manifest.id, dir: open.dir, onnxBytes: open.onnxBytes, sha256: open.sha256 }
      out(`model         ${open.manifest.id} loads (${(open.onnxBytes / 1e6).toFixed(1)} MB, sha256 ${open.sha256.slice(0, 12)}…, graph matches manifest)`)
      const samples = readModelSamples(loaded)
      const exit = Math.max(...open.manifest.exits.map((e) => e.exit))
      const n = exitPath(open.manifest, exit).length
      const x = preprocess(open.manifest, samples.images.subarray(0, samples.imageElements))
      const t0 = performance.now()
      await executor.runSegment(open.manifest.id, { exit, from: 0, to: n }, x)
      const coldMs = performance.now() - t0
      const warm = await executor.runSegment(open.manifest.id, { exit, from: 0, to: n }, x)
      report.timing = { exit, coldMs, warmMs: warm.ms, label: samples.labels[0]!, predicted: argmax(warm.output) }
      out(
        `one sample    exit ${exit}, all ${n} layers: ${warm.ms.toFixed(2)} ms warm (${coldMs.toFixed(0)} ms first run incl. session); predicted ${report.timing.predicted}, label ${report.timing.label}`
      )
    } catch (err) {
      const msg = errorMessage(err)
      report.problems.push(err instanceof UserError ? msg : `runtime: ${msg}`)
    } finally {
      await executor.stop().catch(() => undefined)
    }
  }
  report.ok = report.problems.length === 0
  for (const p of report.problems) out(`problem       ${p}`)
  out(report.ok ? 'check         ok' : 'check         FAILED')
  return report
}
