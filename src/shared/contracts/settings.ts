/**
 * The console's settings (the Settings page, `<data dir>/settings.json`): what both shells start
 * with unless a flag (headless) or an environment variable (desktop) says otherwise. They take effect
 * at the next start. The data directory itself is not among them — it is where they are kept — and
 * is chosen by EDGENT_DATA_DIR / XDG_DATA_HOME / --data-dir.
 */
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'

const port = z.number().int('a whole number').min(1, 'a port from 1 to 65535').max(65535, 'a port from 1 to 65535')
// An IPv4/IPv6 literal or a host name: what Node's listen() takes.
const host = z
  .string()
  .min(1, 'an address such as 127.0.0.1 or 0.0.0.0')
  .max(253)
  .regex(/^[A-Za-z0-9.:[\]_-]+$/, 'an address such as 127.0.0.1 or 0.0.0.0')

export const SettingsSchema = z
  .object({
    /** Plain MQTT: the local device and the console's own client; Pis when TLS is off. */
    mqttPort: port,
    /** null: 127.0.0.1 with TLS on (Pis use TLS), 0.0.0.0 with it off. */
    mqttHost: host.nullable(),
    /** MQTT over TLS, for Pis. */
    mqttsEnabled: z.boolean(),
    mqttsPort: port,
    mqttsHost: host,
    /** The loopback control API and the headless console UI. */
    httpPort: port,
    /** The address Pis dial, named in pairing commands (null: the default route's address). */
    advertiseHost: host.nullable(),
    localDevice: z
      .object({
        enabled: z.boolean(),
        /** Application-level uplink limit of the emulated device, kbit/s. */
        uplinkKbps: z.number().positive('a positive number of kbps').max(1e7, 'at most 10,000,000 kbps'),
        /** Share of one CPU (0.15 ≈ 6.7× slower). */
        cpuQuota: z.number().gt(0, 'a share of one CPU in (0, 1]').max(1, 'a share of one CPU in (0, 1]'),
        cpu: z.enum(['slowdown', 'cgroup'])
      })
      .strict()
  })
  .strict()
  .superRefine((s, ctx) => {
    const clash = portClash(s)
    if (clash)
      ctx.addIssue({ code: 'custom', path: [clash.second], message: `port ${clash.port} is also the ${clash.first}: each listener needs its own port` })
  })

/**
 * Two of the console's own listeners on one port (it would refuse to start, blaming "another
 * broker"): which two and the port; null when each has its own. The TLS port counts only when on.
 */
export function portClash(
  s: Pick<Settings, 'mqttPort' | 'mqttsPort' | 'httpPort' | 'mqttsEnabled'>
): { first: 'mqttPort' | 'mqttsPort' | 'httpPort'; second: 'mqttPort' | 'mqttsPort' | 'httpPort'; port: number } | null {
  const ports = [['mqttPort', s.mqttPort], ...(s.mqttsEnabled ? [['mqttsPort', s.mqttsPort]] : []), ['httpPort', s.httpPort]] as [
    'mqttPort' | 'mqttsPort' | 'httpPort',
    number
  ][]
  for (let i = 0; i < ports.length; i++)
    for (let j = i + 1; j < ports.length; j++) if (ports[i]![1] === ports[j]![1]) return { first: ports[i]![0], second: ports[j]![0], port: ports[j]![1] }
  return null
}

export type Settings = z.infer<typeof SettingsSchema>

export const DEFAULT_SETTINGS: Settings = Object.freeze({
  mqttPort: 1883,
  mqttHost: null,
  mqttsEnabled: true,
  mqttsPort: 8883,
  mqttsHost: '0.0.0.0',
  httpPort: 8080,
  advertiseHost: null,
  localDevice: Object.freeze({ enabled: true, uplinkKbps: 1000, cpuQuota: 0.15, cpu: 'slowdown' as const })
}) as Settings

/** Settings from JSON (a partial object is completed with the defaults); a UserError names the first bad field. */
export function parseSettings(raw: unknown, source: string): Settings {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${source}: expected a JSON object of settings`)
  const r = raw as Record<string, unknown>
  const local = r['localDevice']
  const merged = {
    ...DEFAULT_SETTINGS,
    ...r,
    localDevice:
      typeof local === 'object' && local !== null && !Array.isArray(local)
        ? { ...DEFAULT_SETTINGS.localDevice, ...local }
        : (local ?? DEFAULT_SETTINGS.localDevice)
  }
  const p = SettingsSchema.safeParse(merged)
  if (!p.success) throw new UserError(describeIssues(source, p.error.issues))
  return p.data
}

/** The plain listener's address that a setting of null stands for. */
export function plainMqttHost(s: Settings): string {
  return s.mqttHost ?? (s.mqttsEnabled ? '127.0.0.1' : '0.0.0.0')
}

/**
 * The settings that differ between two sets, by dotted name (an automatic address equals what it
 * stands for; the TLS listener's port and address do not matter while TLS is off in both).
 */
export function changedSettings(a: Settings, b: Settings): string[] {
  const out: string[] = []
  for (const k of Object.keys(a) as (keyof Settings)[]) {
    if ((k === 'mqttsPort' || k === 'mqttsHost') && !a.mqttsEnabled && !b.mqttsEnabled) continue
    if (k === 'mqttHost') {
      if (plainMqttHost(a) !== plainMqttHost(b)) out.push(k)
    } else if (k === 'localDevice') {
      for (const j of Object.keys(a.localDevice) as (keyof Settings['localDevice'])[]) if (a.localDevice[j] !== b.localDevice[j]) out.push(`localDevice.${j}`)
    } else if (a[k] !== b[k]) out.push(k)
  }
  return out
}
