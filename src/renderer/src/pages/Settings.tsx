import { useEffect, useState } from 'react'
import type { SettingsView } from '../../../shared/contracts/console-api'
import type { Settings as SettingsValues } from '../../../shared/contracts/settings'
import { errorMessage } from '../../../shared/errors'
import { Card, ErrorBox, Guard } from '../components/ui'
import { parseAll, type NumberRule } from '../fields'
import { useApi, useQuery } from '../hooks'

const PORT = (name: string): NumberRule => ({ name, integer: true, min: 1, max: 65535 })

/** The form's text, as typed (numbers are parsed, and refused, only on save). */
interface Form {
  mqttPort: string
  mqttHost: string
  mqttsEnabled: boolean
  mqttsPort: string
  mqttsHost: string
  httpPort: string
  advertiseHost: string
  localEnabled: boolean
  uplinkKbps: string
  cpuQuota: string
  cpu: 'slowdown' | 'cgroup'
}

const toForm = (s: SettingsValues): Form => ({
  mqttPort: String(s.mqttPort),
  mqttHost: s.mqttHost ?? '',
  mqttsEnabled: s.mqttsEnabled,
  mqttsPort: String(s.mqttsPort),
  mqttsHost: s.mqttsHost,
  httpPort: String(s.httpPort),
  advertiseHost: s.advertiseHost ?? '',
  localEnabled: s.localDevice.enabled,
  uplinkKbps: String(s.localDevice.uplinkKbps),
  cpuQuota: String(s.localDevice.cpuQuota),
  cpu: s.localDevice.cpu
})

function fromForm(f: Form): { ok: true; settings: SettingsValues } | { ok: false; errors: string[] } {
  const p = parseAll({
    mqttPort: [f.mqttPort, PORT('MQTT port')],
    mqttsPort: [f.mqttsPort, PORT('MQTT over TLS port')],
    httpPort: [f.httpPort, PORT('HTTP port')],
    uplinkKbps: [f.uplinkKbps, { name: 'local device uplink (kbps)', above: 0, max: 1e7 }],
    cpuQuota: [f.cpuQuota, { name: 'local device CPU share', above: 0, max: 1 }]
  })
  const errors = p.ok ? [] : [...p.errors]
  if (!f.mqttsHost.trim()) errors.push('MQTT over TLS address: enter an address such as 0.0.0.0')
  if (!p.ok || errors.length) return { ok: false, errors }
  const v = p.values
  return {
    ok: true,
    settings: {
      mqttPort: v.mqttPort,
      mqttHost: f.mqttHost.trim() || null,
      mqttsEnabled: f.mqttsEnabled,
      mqttsPort: v.mqttsPort,
      mqttsHost: f.mqttsHost.trim(),
      httpPort: v.httpPort,
      advertiseHost: f.advertiseHost.trim() || null,
      localDevice: { enabled: f.localEnabled, uplinkKbps: v.uplinkKbps, cpuQuota: v.cpuQuota, cpu: f.cpu }
    }
  }
}

const hostText = (h: string | null, tls: boolean) => h ?? `automatic (${tls ? '127.0.0.1' : '0.0.0.0'})`

export function Settings(): React.JSX.Element {
  const api = useApi()
  const q = useQuery(() => api.settings({}), 'settings')
  return (
    <Guard q={q} what="settings">
      {(view) => <SettingsForm view={view} onSaved={q.reload} />}
    </Guard>
  )
}

function SettingsForm(props: { view: SettingsView; onSaved: () => void }): React.JSX.Element {
  const api = useApi()
  const { view } = props
  const [form, setForm] = useState<Form>(() => toForm(view.stored))
  const [errors, setErrors] = useState<string[]>([])
  const [saved, setSaved] = useState<SettingsView | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => setForm(toForm(view.stored)), [view.stored])
  const set = <K extends keyof Form>(k: K, v: Form[K]) => {
    setForm((f) => ({ ...f, [k]: v }))
    setSaved(null)
  }
  const save = async () => {
    const p = fromForm(form)
    if (!p.ok) {
      setErrors(p.errors)
      return
    }
    setErrors([])
    setBusy(true)
    try {
      setSaved(await api.settingsUpdate({ settings: p.settings }))
      props.onSaved()
    } catch (err) {
      setErrors([errorMessage(err)])
    } finally {
      setBusy(false)
    }
  }
  const r = view.running
  const text = (label: string, k: keyof Form, running: string, hint?: string) => (
    <tr>
      <th scope="row" className="set-label">
        <label htmlFor={`set-${k}`}>{label}</label>
      </th>
      <td className="set-value">
        <input
          id={`set-${k}`}
          data-testid={`set-${k}`}
          type="text"
          inputMode="decimal"
          value={String(form[k])}
          onChange={(e) => set(k, e.target.value as never)}
        />
        {hint ? <div className="hint">{hint}</div> : null}
      </td>
      <td className="set-value muted">{running}</td>
    </tr>
  )
  const check = (label: string, k: 'mqttsEnabled' | 'localEnabled', running: boolean) => (
    <tr>
      <th scope="row" className="set-label">
        <label htmlFor={`set-${k}`}>{label}</label>
      </th>
      <td className="set-value">
        <input id={`set-${k}`} data-testid={`set-${k}`} type="checkbox" checked={form[k]} onChange={(e) => set(k, e.target.checked)} />
      </td>
      <td className="set-value muted">{running ? 'on' : 'off'}</td>
    </tr>
  )
  const head = (
    <thead>
      <tr>
        <th className="set-label" />
        <th className="set-value">stored (next start)</th>
        <th className="set-value">running now</th>
      </tr>
    </thead>
  )
  return (
    <>
      <Card title="Data directory" testId="settings-where">
        <p>
          <code data-testid="settings-data-dir">{view.dataDir}</code> — the database, the broker's TLS authority, the control token and these settings (
          <code>{view.file}</code>). It is shared by the desktop and the <code>edgent</code> commands; choose another with <code>EDGENT_DATA_DIR</code> or{' '}
          <code>--data-dir</code> (it is not a setting: the settings live in it).
        </p>
      </Card>
      <Card title="Network" testId="settings-network">
        <table className="settings">
          {head}
          <tbody>
            {text('MQTT port', 'mqttPort', String(r.mqttPort))}
            {text('MQTT address', 'mqttHost', hostText(r.mqttHost, r.mqttsEnabled), 'empty: 127.0.0.1 with TLS on (Pis use TLS), 0.0.0.0 with it off')}
            {check('MQTT over TLS', 'mqttsEnabled', r.mqttsEnabled)}
            {text('MQTT over TLS port', 'mqttsPort', String(r.mqttsPort))}
            {text('MQTT over TLS address', 'mqttsHost', r.mqttsHost)}
            {text('HTTP port (console UI and CLI, loopback)', 'httpPort', String(r.httpPort))}
            {text(
              'Address Pis dial (pairing commands)',
              'advertiseHost',
              r.advertiseHost ?? 'automatic (the default route)',
              'empty: the address of the default route; set it when Pis reach this machine on another interface'
            )}
          </tbody>
        </table>
      </Card>
      <Card title="Local emulated device" testId="settings-local">
        <table className="settings">
          {head}
          <tbody>
            {check('Start the local device', 'localEnabled', r.localDevice.enabled)}
            {text('Uplink (kbps)', 'uplinkKbps', String(r.localDevice.uplinkKbps), 'an application-level limit on its activations')}
            {text('CPU share', 'cpuQuota', String(r.localDevice.cpuQuota), '0.15 ≈ 6.7× slower than this machine')}
            <tr>
              <th scope="row" className="set-label">
                <label htmlFor="set-cpu">CPU emulation</label>
              </th>
              <td className="set-value">
                <select id="set-cpu" data-testid="set-cpu" value={form.cpu} onChange={(e) => set('cpu', e.target.value as Form['cpu'])}>
                  <option value="slowdown">slowdown (steady: waits out 1/share × its compute time)</option>
                  <option value="cgroup">cgroup (a CFS quota; needs root; bursty)</option>
                </select>
              </td>
              <td className="set-value muted">{r.localDevice.cpu}</td>
            </tr>
          </tbody>
        </table>
      </Card>
      <div className="row">
        <button type="button" onClick={() => void save()} disabled={busy} data-testid="settings-save">
          Save
        </button>
        <button type="button" className="secondary" onClick={() => setForm(toForm(view.defaults))} data-testid="settings-defaults">
          Defaults
        </button>
      </div>
      {errors.length ? <ErrorBox error={errors.join(' · ')} /> : null}
      {saved ? (
        <div className="banner" role="status" data-testid="settings-saved">
          Saved to {saved.file}. {saved.restartNeeded.length ? `Restart the console to apply: ${saved.restartNeeded.join(', ')}.` : 'They match what runs now.'}
        </div>
      ) : view.restartNeeded.length ? (
        <div className="banner" role="status" data-testid="settings-pending">
          Stored but not running yet (restart the console to apply): {view.restartNeeded.join(', ')}.
        </div>
      ) : null}
    </>
  )
}
