/** `edgent serve` and the commands that talk to a running console (pair, unpair, devices, infer). */
import { emulationText } from '../../shared/text.js'
import type { Codec } from '../../shared/algorithms/codecs.js'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { pino } from 'pino'
import { UserError, flagOf } from '../../shared/errors.js'
import { checkAgentId } from '../../shared/contracts/topics.js'
import { lanAddress, lanAddresses, startStack, type StackOptions } from '../shell/stack.js'
import { installProcessGuard } from '../shell/process-guard.js'
import { withStore } from '../store/store.js'
import { hashToken, newToken } from '../console/broker/tokens.js'
import { caFingerprint } from '../console/broker/tls.js'
import { credentialsCommand, credentialsFor } from '../../shared/contracts/credentials.js'
import { npxCommand } from '../../shared/npx.js'
import { portClash, type Settings } from '../../shared/contracts/settings.js'
import { readSettings } from '../runtime/settings-file.js'
import { callConsole, findConsole, runningConsole } from './client.js'
import { ms, pct, table } from './format.js'
import type { DeviceView } from '../../shared/contracts/console-api.js'
import { throttling } from '../../shared/contracts/health.js'

export { defaultDataDir } from '../runtime/data-dir.js'

/** The stack's options, with a log level instead of a logger, and the TLS listener as its two flags. */
export type ServeOptions = Omit<StackOptions, 'log' | 'mqttTlsPort' | 'mqttTlsHost' | 'mqttHost'> & {
  logLevel: string
  mqttHost?: string
  mqtts: boolean
  mqttsPort: number
  mqttsHost: string
}

/** Flags over stored settings over defaults: a flag given on the command line wins, else the setting. */
export function withSettings(flags: ServeOptions, s: Settings, given: (option: string) => boolean): ServeOptions {
  const pick = <T>(option: string, flag: T, setting: T): T => (given(option) ? flag : setting)
  const mqtts = pick('mqtts', flags.mqtts, s.mqttsEnabled)
  // The plain listener's address: a flag, else the stored one, else (unset) the TLS-dependent default.
  const mqttHost = given('mqttHost') ? flags.mqttHost : (s.mqttHost ?? undefined)
  return {
    ...flags,
    mqttPort: pick('mqttPort', flags.mqttPort, s.mqttPort),
    ...(mqttHost !== undefined ? { mqttHost } : {}),
    mqtts,
    mqttsPort: pick('mqttsPort', flags.mqttsPort, s.mqttsPort),
    mqttsHost: pick('mqttsHost', flags.mqttsHost, s.mqttsHost),
    httpPort: pick('httpPort', flags.httpPort, s.httpPort),
    advertiseHost: given('advertiseHost') ? (flags.advertiseHost ?? null) : s.advertiseHost,
    localAgent: pick('localAgent', flags.localAgent, s.localDevice.enabled),
    localUplinkKbps: pick('localUplinkKbps', flags.localUplinkKbps, s.localDevice.uplinkKbps),
    localCpuQuota: pick('localCpuQuota', flags.localCpuQuota, s.localDevice.cpuQuota),
    localCpu: pick('localCpu', flags.localCpu, s.localDevice.cpu)
  }
}

/** Which address pairing commands name, and the others Pis might need instead. */
function advertisedLine(given: string | null): string {
  const chosen = lanAddress(given)
  const others = lanAddresses()
    .map((a) => a.address)
    .filter((a) => a !== chosen)
  return `  Pis are told to dial ${chosen}${given ? ' (--advertise-host)' : ''}${others.length ? ` (also here: ${others.join(', ')}; choose with --advertise-host)` : ''}`
}

export async function serve(o: ServeOptions, out: (t: string) => void): Promise<never> {
  const log = pino({ level: o.logLevel }, pino.destination(2))
  const { logLevel: _l, mqtts, mqttsPort, mqttsHost, ...rest } = o
  const tls = mqtts && !o.broker
  // Two of its own listeners on one port would fail the start as "in use" by someone else.
  const clash = portClash({ mqttPort: o.broker ? -1 : o.mqttPort, mqttsPort, httpPort: o.httpPort, mqttsEnabled: tls })
  if (clash) throw new UserError(`${flagOf(clash.second)} ${clash.port} is also the ${flagOf(clash.first)}: give each listener its own port`)
  // With TLS the plain listener serves the console's own client and the local device: loopback only,
  // unless the user opens it. Without TLS it is how Pis connect.
  const mqttHost = o.mqttHost ?? (tls ? '127.0.0.1' : '0.0.0.0')
  const stack = await startStack({ ...rest, shell: 'headless', mqttHost, mqttTlsPort: tls ? mqttsPort : null, mqttTlsHost: mqttsHost, log })
  installProcessGuard(log)
  const { core, api, local, dataDir } = stack
  out(
    [
      `Edgent console running · model ${core.model.id} · data ${dataDir}`,
      `  open the console: ${api.url}`,
      `  MQTT broker: ${o.broker ?? `mqtt://${mqttHost}:${core.mqttPort}`}${core.mqttTlsPort ? ` and mqtts://${mqttsHost}:${core.mqttTlsPort} (CA SHA-256 ${core.tls?.caSha256.slice(0, 16)}…)` : ''}`,
      `  control API: http://127.0.0.1:${api.port}/api (token in ${join(dataDir, 'console.json')})`,
      local
        ? `  local emulated device: local-pi (${emulationText(local.emulation as Record<string, unknown> | undefined)})`
        : '  no local device (--no-local-agent)',
      `  pair a Pi:   ${npxCommand('edgent', 'pair', '<id>', '--data-dir', dataDir)}   (writes <id>.credentials.json to copy to the Pi)`,
      advertisedLine(o.advertiseHost ?? null),
      `  co-infer:    ${npxCommand('edgent', 'infer', '--agent', local ? 'local-pi' : '<id>', '--count', '50', '--latency-ms', '100', '--data-dir', dataDir)}`,
      'Ctrl-C stops.'
    ].join('\n')
  )
  return new Promise<never>(() => {
    let stopping = false
    const stop = async (signal: string) => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'stopping')
      await stack.stop()
      process.exit(0)
    }
    // `on`, not `once`: Ctrl-C reaches every process of the terminal's group, and a launcher (npm,
    // scripts/start.js) forwards it too — a second SIGINT with no handler left killed the console
    // mid-stop, leaving its lock and control files behind.
    process.on('SIGINT', () => void stop('SIGINT'))
    process.on('SIGTERM', () => void stop('SIGTERM'))
  })
}

/**
 * Pairs an agent id and writes its credentials file (id, broker URL, token, and the console's CA for
 * mqtts://) with mode 0600: the token is shown nowhere else, and never needs to be on a command line.
 */
export async function pairCommand(id: string, dataDir: string, o: { out?: string; force?: boolean; advertiseHost?: string } = {}): Promise<string> {
  checkAgentId(id)
  const dir = resolve(dataDir)
  const running = findConsole(dir)
  let text: string
  let broker: string
  let replaced = false
  if (running) {
    ;({ credentials: text, broker, replaced } = await callConsole(running, 'pair', { id, ...(o.force ? { force: true } : {}) }))
  } else {
    // The console is not running: the token goes straight into its database; the broker is assumed on
    // its default ports, over TLS when the console has made its CA.
    const token = newToken()
    withStore(join(dir, 'edgent.db'), (store) => {
      replaced = store.devices.hasLiveToken(id)
      if (replaced && !o.force)
        throw new UserError(`agent "${id}" is already paired: pairing it again issues a new token and the old one stops working — add --force to do so`)
      store.devices.pair(id, hashToken(token))
    })
    // The ports and address of the console's next start: its stored settings.
    const s = readSettings(dir)
    const caPath = join(dir, 'tls', 'ca.pem')
    const ca = s.mqttsEnabled && existsSync(caPath) ? readFileSync(caPath, 'utf8') : null
    ;({ text, broker } = credentialsFor({
      id,
      token,
      host: lanAddress(o.advertiseHost ?? s.advertiseHost),
      port: s.mqttPort,
      tls: ca ? { port: s.mqttsPort, ca, caSha256: caFingerprint(ca) } : null
    }))
  }
  const file = resolve(o.out ?? `${id}.credentials.json`)
  writeFileSync(file, text, { mode: 0o600 })
  chmodSync(file, 0o600)
  const caSha256 = (JSON.parse(text) as { caSha256?: string }).caSha256
  return [
    ...(replaced ? [`re-paired ${id}: its old token no longer works (a running agent with it was disconnected).`] : []),
    `paired ${id}: its token is in ${file} (mode 0600) and nowhere else; keep the file secret.`,
    `Copy it to the Pi (64-bit Raspberry Pi OS, Node 22.12+ or 24) and run there:`,
    '',
    `  ${credentialsCommand(basename(file))}`,
    '',
    caSha256
      ? `The agent connects over TLS (${broker}) and pins this console's CA, SHA-256 ${caSha256.replace(/(..)(?!$)/g, '$1:')}.`
      : `The agent connects over plain MQTT (${broker}): the token and activations cross the network unencrypted. Start the console with TLS (its default) and pair again.`,
    ''
  ].join('\n')
}

export async function unpairCommand(id: string, dataDir: string): Promise<string> {
  checkAgentId(id)
  const running = findConsole(resolve(dataDir))
  if (running) {
    const r = await callConsole(running, 'unpair', { id })
    return `unpaired ${id}${r.disconnected ? ' and disconnected it' : ''}`
  }
  withStore(join(resolve(dataDir), 'edgent.db'), (store) => {
    if (!store.devices.get(id)) throw new UserError(`unknown agent "${id}"`)
    store.devices.revoke(id)
  })
  return `unpaired ${id} (the console is not running; it will refuse the agent when it starts)`
}

/** "52.1 °C · 1500 MHz (ondemand) · load 0.31 · THROTTLED now" */
export function healthText(h: DeviceView['health']): string {
  if (!h) return '—'
  const { now } = throttling(h.throttled)
  return [
    h.temperatureC !== null ? `${h.temperatureC} °C` : null,
    h.cpuCurMHz !== null ? `${h.cpuCurMHz} MHz${h.governor ? ` (${h.governor})` : ''}` : null,
    `load ${h.load[0]!.toFixed(2)}`,
    now.length ? `THROTTLED: ${now.join(', ')}` : null
  ]
    .filter(Boolean)
    .join(' · ')
}

export async function devicesCommand(dataDir: string, json: boolean): Promise<string> {
  const list = await callConsole(runningConsole(dataDir), 'devices', {})
  if (json) return JSON.stringify(list, null, 2)
  return table(
    ['agent', 'paired', 'state', 'arch', 'plan', 'uplink kbps', 'latencies from', 'health'],
    list.map((d) => [
      d.id,
      d.paired ? 'yes' : 'revoked',
      d.state,
      d.hello?.arch ?? '—',
      d.plan ? `exit ${d.plan.exit}, ${d.plan.deviceLayers}/${d.plan.layers} on device` : '—',
      d.uplinkEstimateKbps ? String(Math.round(d.uplinkEstimateKbps)) : '—',
      d.latencySource ? (d.latencySource.kind === 'profile' ? `profile ${d.latencySource.profileId}` : 'measured tables') : '—',
      healthText(d.health)
    ])
  )
}

export async function inferCommand(o: {
  agent: string
  count: number
  latencyMs: number
  uplinkKbps?: number
  percentile?: number
  plan?: { exit: number; deviceLayers: number; codec?: Codec }
  tags?: string[]
  note?: string
  dataDir: string
  json?: boolean
}): Promise<string> {
  const r = await callConsole(runningConsole(o.dataDir), 'infer', {
    ...(o.tags ? { tags: o.tags } : {}),
    ...(o.note !== undefined ? { note: o.note } : {}),
    ...(o.plan ? { plan: o.plan } : {}),
    agent: o.agent,
    count: o.count,
    latencyMs: o.latencyMs,
    ...(o.uplinkKbps !== undefined ? { uplinkKbps: o.uplinkKbps } : {}),
    ...(o.percentile !== undefined ? { percentile: o.percentile } : {})
  })
  if (o.json) return JSON.stringify(r, null, 2)
  const s = r.summary
  const at = s.percentile !== null ? ` at p${s.percentile}` : ''
  const t = s.tail
  return [
    `run ${s.runId}: ${s.completed}/${s.count} co-inferences on ${s.agentId} · requirement ${s.latencyMs} ms${at} · uplink ${Math.round(s.uplinkKbps)} kbps (${s.bandwidthSource})`,
    `plan ${s.plan.planId}: ${s.plan.policy !== undefined ? `policy ${s.plan.policy} (exits on confidence) to exit` : 'exit'} ${s.plan.exit}, ${s.plan.deviceLayers}/${s.plan.layers} layers on the device${s.plan.codec ? `, activation as ${s.plan.codec}` : ''}, predicted ${ms(s.plan.predictedMs)} ms${s.plan.predictedPercentileMs !== undefined ? ` typical, ${ms(s.plan.predictedPercentileMs)} ms${at}` : ''}${s.plan.pinned ? (s.plan.feasible ? ' (pinned)' : ' (pinned; predicted over the requirement)') : s.plan.feasible ? '' : ' (infeasible: fastest plan)'}${s.planChanges > 1 ? ` · ${s.planChanges - 1} plan change(s) during the run` : ''}`,
    t
      ? t.why
        ? `tail: ${t.why}`
        : `tail (measured over ${t.samples} inferences of ${t.plans} plans): device ×${t.deviceFactor.toFixed(2)}, edge ×${t.edgeFactor.toFixed(2)}, link and messaging +${ms(t.extraMs)} ms at p${t.percentile}`
      : '',
    `end-to-end p50 ${ms(s.p50Ms)} ms · p95 ${ms(s.p95Ms)} ms${s.percentileMs !== null && s.percentile !== 95 ? ` · p${s.percentile} ${ms(s.percentileMs)} ms` : ''} · requirement met ${pct(s.metShare)}${s.percentile !== null ? ` (target ${s.percentile} %)` : ''} · accuracy ${s.accuracy === null ? '—' : pct(s.accuracy)}${s.lost ? ` · ${s.lost} lost` : ''}`,
    s.leftAt
      ? `frames left at: ${s.leftAt.map((x) => `exit ${x.exit} (${x.side}) ${pct(x.share)}, mean ${ms(x.meanMs)} ms`).join('; ')}${s.plan.mixture ? ` — predicted ${s.plan.mixture.map((x) => `${pct(x.share)} at ${ms(x.ms)} ms`).join(', ')}` : ''}`
      : '',
    s.prediction.mapeCorrected === null
      ? ''
      : `predicted vs measured end-to-end: MAPE ${pct(s.prediction.mapeCorrected)} as planned, ${pct(s.prediction.mapeUncorrected!)} without the online correction (learned so far: device ×${s.prediction.deviceFactor.toFixed(2)}, edge ×${s.prediction.edgeFactor.toFixed(2)}, overhead ${ms(s.prediction.overheadMs)} ms per inference)`,
    s.stopped ? `stopped early: ${s.stopped}` : '',
    s.prediction.families?.length
      ? `online correction, kept only where it measures better: ${s.prediction.families
          .map(
            (f) =>
              `${f.family} ${f.used ? 'corrected' : 'uncorrected'} (error ${pct(f.correctedError)} corrected, ${pct(f.rawError)} not, ${f.batches} batch${f.batches > 1 ? 'es' : ''})`
          )
          .join('; ')}`
      : ''
  ]
    .filter(Boolean)
    .join('\n')
}
