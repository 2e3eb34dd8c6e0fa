/**
 * What the desktop shell starts, without `electron` (so that it is tested in plain Node): the stack's
 * options — the data directory the CLI uses too, the local device under Node semantics — and the
 * page a failed start shows in the window.
 */
import type { Logger } from 'pino'
import { errorMessage, UserError } from '../../shared/errors.js'
import { nodeRuntime } from '../console/features/local-agent.js'
import { defaultDataDir } from '../runtime/data-dir.js'
import { defaultModelDir } from '../runtime/paths.js'
import type { StackOptions } from './stack.js'
import { readSettings } from '../runtime/settings-file.js'
import { plainMqttHost } from '../../shared/contracts/settings.js'

/**
 * The desktop console's stack: environment variables over the Settings page's values
 * (`<data dir>/settings.json`) over the defaults. A settings file that is not valid stops the start
 * with a message naming the field.
 */
export function desktopStackOptions(env: NodeJS.ProcessEnv, log: Logger, versions: NodeJS.ProcessVersions = process.versions): StackOptions {
  const dataDir = defaultDataDir(env)
  const s = readSettings(dataDir)
  const num = (name: string, fallback: number): number => {
    const v = env[name]
    if (v === undefined || v === '') return fallback
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UserError(`${name}=${v} is not a port: unset it or give a number from 1 to 65535`)
    return n
  }
  const tls = env['EDGENT_NO_MQTTS'] === '1' ? false : s.mqttsEnabled
  return {
    shell: 'desktop',
    mqttPort: num('EDGENT_MQTT_PORT', s.mqttPort),
    // Pis connect over TLS; the plain listener is then the console's own and the local device's (loopback).
    mqttHost: plainMqttHost({ ...s, mqttsEnabled: tls }),
    mqttTlsPort: tls ? num('EDGENT_MQTTS_PORT', s.mqttsPort) : null,
    mqttTlsHost: s.mqttsHost,
    httpPort: num('EDGENT_HTTP_PORT', s.httpPort),
    advertiseHost: env['EDGENT_ADVERTISE_HOST'] || s.advertiseHost,
    dataDir,
    localAgent: env['EDGENT_NO_LOCAL_AGENT'] === '1' ? false : s.localDevice.enabled,
    model: env['EDGENT_MODEL_DIR'] ?? defaultModelDir(),
    localUplinkKbps: s.localDevice.uplinkKbps,
    localCpuQuota: s.localDevice.cpuQuota,
    localCpu: s.localDevice.cpu,
    // Inside Electron process.execPath is Electron's binary: the device runs it as Node.
    agentRuntime: nodeRuntime(versions),
    log
  }
}

export interface StartupProblem {
  /** What went wrong and what to do, one sentence (the headless shell prints the same line). */
  message: string
  /** False for a bug rather than a condition the user can fix (the page then points to the log). */
  expected: boolean
}

export function startupProblem(err: unknown): StartupProblem {
  return err instanceof UserError ? { message: err.message, expected: true } : { message: errorMessage(err), expected: false }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** A self-contained page (no script) for the window when the console could not start. */
export function startupErrorPage(p: StartupProblem, logHint: string): string {
  // "what — fix" or "what: fix": the fix after the first " — ", else after the first ": ".
  const dash = p.message.indexOf(' — ')
  const colon = p.message.indexOf(': ')
  const at = dash >= 0 ? dash : colon
  const what = at >= 0 ? p.message.slice(0, at) : p.message
  const fix = at >= 0 ? p.message.slice(at + (dash >= 0 ? 3 : 2)) : null
  return `<!doctype html><html><head><meta charset="utf-8"><title>Edgent Console — could not start</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{font:15px system-ui,sans-serif;margin:48px;max-width:760px;color:#1d2330}h1{font-size:20px}
.what{background:#fdecec;border-left:4px solid #c62828;padding:12px 16px}.fix{background:#eef6ee;border-left:4px solid #2e7d32;padding:12px 16px;margin-top:12px}
code{font-family:ui-monospace,monospace}</style></head><body>
<h1>The console could not start</h1>
<div class="what" id="what">${escapeHtml(what)}</div>
${fix ? `<div class="fix" id="fix"><b>To fix:</b> ${escapeHtml(fix)}</div>` : ''}
<p>${p.expected ? 'Close this window, fix the cause and start the console again.' : `This looks like a bug: the details are in ${escapeHtml(logHint)}. Please report it with that log.`}</p>
</body></html>`
}
