/**
 * What the desktop shell starts, without `electron` (so that it is tested in plain Node): the stack's
 * options — the data directory the CLI uses too, the local device under Node semantics — and the
 * page a failed start shows in the window.
 */
import type { Logger } from 'pino'
import { errorMessage, UserError } from '../../shared/errors.js'
import { nodeRuntime } from '../console/local-agent.js'
import { defaultDataDir } from '../runtime/data-dir.js'
import { defaultModelDir } from '../runtime/paths.js'
import { DEFAULT_MQTTS_PORT, type StackOptions } from './stack.js'

/** The desktop console's stack: environment overrides on the defaults (the Settings page stores the rest). */
export function desktopStackOptions(env: NodeJS.ProcessEnv, log: Logger, versions: NodeJS.ProcessVersions = process.versions): StackOptions {
  const noTls = env['EDGENT_NO_MQTTS'] === '1'
  return {
    shell: 'desktop',
    mqttPort: Number(env['EDGENT_MQTT_PORT'] ?? 1883),
    // Pis connect over TLS; the plain listener is the console's own and the local device's (loopback).
    mqttHost: noTls ? '0.0.0.0' : '127.0.0.1',
    mqttTlsPort: noTls ? null : Number(env['EDGENT_MQTTS_PORT'] ?? DEFAULT_MQTTS_PORT),
    mqttTlsHost: '0.0.0.0',
    httpPort: Number(env['EDGENT_HTTP_PORT'] ?? 8080),
    dataDir: defaultDataDir(env),
    localAgent: env['EDGENT_NO_LOCAL_AGENT'] !== '1',
    model: env['EDGENT_MODEL_DIR'] ?? defaultModelDir(),
    localUplinkKbps: 1000,
    localCpuQuota: 0.15,
    localCpu: 'slowdown',
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
  // "what: fix" — the fix after the first ": " that follows the subject, when the message has one.
  const [what, ...rest] = p.message.split(': ')
  const fix = rest.length ? rest.join(': ') : null
  return `<!doctype html><html><head><meta charset="utf-8"><title>Edgent Console — could not start</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{font:15px system-ui,sans-serif;margin:48px;max-width:760px;color:#1d2330}h1{font-size:20px}
.what{background:#fdecec;border-left:4px solid #c62828;padding:12px 16px}.fix{background:#eef6ee;border-left:4px solid #2e7d32;padding:12px 16px;margin-top:12px}
code{font-family:ui-monospace,monospace}</style></head><body>
<h1>The console could not start</h1>
<div class="what" id="what">${escapeHtml(fix ? what! : p.message)}</div>
${fix ? `<div class="fix" id="fix"><b>To fix:</b> ${escapeHtml(fix)}</div>` : ''}
<p>${p.expected ? 'Close this window, fix the cause and start the console again.' : `This looks like a bug: the details are in ${escapeHtml(logHint)}. Please report it with that log.`}</p>
</body></html>`
}
