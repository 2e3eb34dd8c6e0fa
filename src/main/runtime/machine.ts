/**
 * What a machine is, for calibration data a researcher can trust: CPU model, cores, nominal and
 * current frequency, OS and distribution, memory, Node and onnxruntime-node versions. The console
 * records its own and the device's (from the agent's hello) with every campaign.
 */
import { readFileSync } from 'node:fs'
import { arch, cpus, release, totalmem, type as osType } from 'node:os'
import { ORT_PACKAGE_VERSION } from './version.js'

export interface Machine {
  cpuModel: string
  cores: number
  /** The highest frequency the CPU reports (cpufreq's cpuinfo_max_freq), else what Node reports, MHz. */
  cpuMaxMHz: number | null
  /** cpu0's current frequency when described (cpufreq's scaling_cur_freq), MHz. */
  cpuCurMHz: number | null
  /** "Linux 6.1.0-13-arm64 (Debian GNU/Linux 12 (bookworm))" */
  os: string
  arch: string
  memoryBytes: number
  node: string
  onnxruntime: string
}

/** A cpufreq file (kHz) in MHz, or null when it cannot be read. */
export function readMHz(file: string): number | null {
  try {
    const khz = Number(readFileSync(file, 'utf8').trim())
    return Number.isFinite(khz) && khz > 0 ? Math.round(khz / 1000) : null
  } catch {
    return null
  }
}

function distribution(): string | null {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))
    return m?.[1] ?? null
  } catch {
    return null
  }
}

export function describeMachine(): Machine {
  const list = cpus()
  const cpufreq = '/sys/devices/system/cpu/cpu0/cpufreq'
  const distro = distribution()
  return {
    cpuModel: list[0]?.model.trim() || 'unknown',
    cores: list.length,
    cpuMaxMHz: readMHz(`${cpufreq}/cpuinfo_max_freq`) ?? (list[0]?.speed || null),
    cpuCurMHz: readMHz(`${cpufreq}/scaling_cur_freq`),
    os: `${osType()} ${release()}${distro ? ` (${distro})` : ''}`,
    arch: arch(),
    memoryBytes: totalmem(),
    node: process.versions.node,
    onnxruntime: ORT_PACKAGE_VERSION
  }
}
