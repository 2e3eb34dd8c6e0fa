#!/usr/bin/env node
/**
 * `npm run pack:agent`: the agent as one npm tarball for a Raspberry Pi (dist/edgent-agent-<v>.tgz).
 * It holds the built agent (out/main/agent.js, its chunks and the ORT worker), the shipped model and
 * the systemd unit, and depends only on pure-JS packages and onnxruntime-node (whose linux-arm64 CPU
 * binary is inside its package): installing it needs no compiler, unlike the console (better-sqlite3).
 * Dependency versions are the exact ones installed here, so the Pi runs what CI tested.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'out', 'main')
if (!existsSync(join(out, 'agent.js'))) {
  process.stderr.write('pack-agent: out/main/agent.js is missing: run `npm run build` first\n')
  process.exit(2)
}
const DEPS = ['@bufbuild/protobuf', 'commander', 'ml-matrix', 'mqtt', 'onnx-buf', 'onnxruntime-node', 'pino', 'simple-statistics', 'zod']
// The files the agent loads: its entry, the ORT worker, and the chunks they import (transitively).
const relImports = (src) => [...src.matchAll(/(?:^import [^'"]*|\bimport\()["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1])
const files = new Set()
const visit = (rel) => {
  const norm = join(rel).replace(/\\/g, '/')
  if (files.has(norm)) return
  files.add(norm)
  const src = readFileSync(join(out, norm), 'utf8')
  for (const r of relImports(src)) visit(join(dirname(norm), r))
}
visit('agent.js')
visit('ort-worker.js')
// Every bare import of those files must be one of DEPS (a new import fails the pack, not the Pi).
for (const f of files) {
  const src = readFileSync(join(out, f), 'utf8')
  for (const m of src.matchAll(/^import [^'"]*["']([^"'.][^"']*)["']/gm)) {
    const name = m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0]
    if (!/^node:/.test(m[1]) && !DEPS.includes(name)) {
      process.stderr.write(`pack-agent: ${f} imports "${name}", which the agent package does not declare\n`)
      process.exit(1)
    }
  }
}
const root_pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const agent_pkg = JSON.parse(readFileSync(join(root, 'pi-agent', 'package.json'), 'utf8'))
const version = (dep) => JSON.parse(readFileSync(join(root, 'node_modules', dep, 'package.json'), 'utf8')).version

const stage = join(root, 'dist', 'edgent-agent')
rmSync(stage, { recursive: true, force: true })
mkdirSync(join(stage, 'out', 'main'), { recursive: true })
for (const f of files) {
  mkdirSync(dirname(join(stage, 'out', 'main', f)), { recursive: true })
  cpSync(join(out, f), join(stage, 'out', 'main', f))
}
cpSync(join(root, 'resources', 'models'), join(stage, 'resources', 'models'), {
  recursive: true,
  filter: (p) => !p.endsWith('.pt')
})
cpSync(join(root, 'pi-agent', 'systemd'), join(stage, 'systemd'), { recursive: true })
cpSync(join(root, 'pi-agent', 'README.md'), join(stage, 'README.md'))
mkdirSync(join(stage, 'bin'))
writeFileSync(
  join(stage, 'bin', 'edgent-agent.js'),
  `#!/usr/bin/env node
// The \`edgent-agent\` command of the packed agent.
const { main } = await import(new URL('../out/main/agent.js', import.meta.url).href)
process.exitCode = await main(process.argv.slice(2))
`,
  { mode: 0o755 }
)
writeFileSync(
  join(stage, 'package.json'),
  `${JSON.stringify(
    {
      name: 'edgent-agent',
      version: agent_pkg.version,
      description: agent_pkg.description,
      license: root_pkg.license,
      type: 'module',
      engines: agent_pkg.engines,
      os: ['linux', 'darwin'],
      cpu: ['arm64', 'x64'],
      bin: { 'edgent-agent': './bin/edgent-agent.js' },
      dependencies: Object.fromEntries(DEPS.map((d) => [d, version(d)])),
      // npm 11: onnxruntime-node's postinstall only fetches CUDA extras; its CPU binaries are in the package.
      allowScripts: { 'onnxruntime-node': false }
    },
    null,
    2
  )}\n`
)
const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', join(root, 'dist')], { cwd: stage, encoding: 'utf8' })
  .trim()
  .split('\n')
  .pop()
process.stdout.write(`${join(root, 'dist', tgz)}\n`)
