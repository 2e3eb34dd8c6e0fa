import { useEffect, useState } from 'react'
import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { DeviceView, LibraryModelView, ModelCutsView, TransferView } from '../../../shared/console-api'
import { errorMessage } from '../../../shared/errors'
import { Card, ErrorBox, Guard, RowForm, fmtPct } from '../components/ui'
import { useApi, useConsoleEvents, useQuery } from '../hooks'
import { ProgressBar } from './Campaigns'

const accuracyText = (a: { accuracy: number; accuracySource: 'measured' | 'supplied' }) =>
  `${fmtPct(a.accuracy)}${a.accuracySource === 'supplied' ? ' (supplied)' : ''}`

/**
 * Neurosurgeon's picture for one exit: at each cut point, the bytes that cross the link (against the
 * input's) and the share of the exit's multiply-accumulates left on the device.
 */
function CutChart(props: { cuts: ModelCutsView; exit: number }): React.JSX.Element {
  const e = props.cuts.exits.find((x) => x.exit === props.exit) ?? props.cuts.exits[props.cuts.exits.length - 1]!
  const total = e.cuts[0]!.edgeMacs
  const rows = e.cuts.map((c) => ({
    cut: c.deviceLayers,
    label: c.layer ?? 'input',
    ratio: c.bytes / props.cuts.inputBytes,
    device: total > 0 ? (100 * c.deviceMacs) / total : 0
  }))
  const smaller = rows.filter((r) => r.cut > 0 && r.cut < rows.length - 1 && r.ratio < 1).length
  // A log axis over every ratio (recharts' 'auto' clips the extremes of a log domain).
  const ratios = rows.map((r) => r.ratio).filter((v) => v > 0)
  const domain: [number, number] = [Math.min(...ratios) / 2, Math.max(...ratios) * 2]
  return (
    <div data-testid="cut-chart" data-cuts={rows.length}>
      <p className="hint">
        {rows.length - 1} layers; {smaller} middle cut point{smaller === 1 ? '' : 's'} send less than the input ({props.cuts.inputBytes.toLocaleString()}{' '}
        bytes).
      </p>
      <ResponsiveContainer width="100%" height={320}>
        <ComposedChart data={rows} margin={{ top: 8, right: 24, bottom: 40, left: 16 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="cut" label={{ value: 'device layers (cut point)', position: 'insideBottom', offset: -24 }} />
          <YAxis
            yAxisId="bytes"
            scale="log"
            domain={domain}
            allowDataOverflow
            tickFormatter={(v: number) => String(+v.toPrecision(2))}
            label={{ value: 'bytes sent / input', angle: -90, position: 'insideLeft', offset: -4 }}
          />
          <YAxis yAxisId="macs" orientation="right" domain={[0, 100]} label={{ value: '% MACs on device', angle: 90, position: 'insideRight' }} />
          <Tooltip labelFormatter={(v) => `cut after ${rows[Number(v)]?.label ?? v}`} />
          <Legend verticalAlign="bottom" wrapperStyle={{ paddingTop: 28 }} />
          <Bar yAxisId="bytes" dataKey="ratio" name="activation bytes / input bytes" fill="#2f6fdf" isAnimationActive={false} />
          <Line yAxisId="macs" dataKey="device" name="compute on the device (% of MACs)" stroke="#f0a030" dot={false} isAnimationActive={false} />
        </ComposedChart>
      </ResponsiveContainer>
    </div>
  )
}

const EVERY = '(every device without its own)'

function transferText(t: TransferView): string {
  const mb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`)
  if (t.state === 'done') return `holds ${t.model} (${mb(t.totalBytes)})`
  if (t.state === 'failed') return `transfer of ${t.model} failed: ${t.error ?? 'unknown error'}`
  return `fetching ${t.model}: ${mb(t.bytes)} of ${mb(t.totalBytes)}`
}

/** Which model each device is planned and served with, the selected model's assignment, and transfers in progress. */
function Assignment(props: { selected: string; onChanged: () => void }): React.JSX.Element {
  const api = useApi()
  const devices = useQuery<DeviceView[]>(
    () => api.devices({}),
    'devices',
    (e) => e.type === 'devices' || e.type === 'agent-state'
  )
  const [transfers, setTransfers] = useState<Record<string, TransferView>>({})
  const [target, setTarget] = useState(EVERY)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useConsoleEvents((e) => {
    if (e.type === 'transfer') setTransfers((t) => ({ ...t, [e.data.agentId]: e.data }))
    if (e.type === 'transfer' && e.data.state !== 'sending') devices.reload()
  })
  const paired = (devices.data ?? []).filter((d) => d.paired)
  const use = async (model: string | null, agent: string | null) => {
    setBusy(true)
    setError(null)
    try {
      await api.modelUse({ model, ...(agent ? { agent } : {}) })
      devices.reload()
      props.onChanged()
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Card title="Devices and their models" testId="assign-card">
      <p className="hint">
        A device is planned and served with the model assigned to it, else the default. An agent that does not hold its model fetches it from this console over
        MQTT (1 MiB chunks, each checked with SHA-256, resumed after a dropped connection).
      </p>
      <RowForm onSubmit={() => use(props.selected, target === EVERY ? null : target)}>
        <span>
          use <b>{props.selected}</b> for
        </span>
        <select value={target} onChange={(e) => setTarget(e.target.value)} data-testid="assign-target" aria-label="device">
          <option value={EVERY}>{EVERY}</option>
          {paired.map((d) => (
            <option key={d.id} value={d.id}>
              {d.id}
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy} data-testid="assign-submit">
          Use this model
        </button>
      </RowForm>
      {error ? <ErrorBox error={error} /> : null}
      <Guard q={devices} what="devices" empty={() => (paired.length ? null : 'No paired device.')}>
        {() => (
          <table className="table" data-testid="assign-table">
            <thead>
              <tr>
                <th>device</th>
                <th>state</th>
                <th>model</th>
                <th>transfer</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {paired.map((d) => {
                const t = transfers[d.id] ?? d.transfer
                return (
                  <tr key={d.id} data-testid={`assign-${d.id}`}>
                    <td>{d.id}</td>
                    <td>{d.state}</td>
                    <td>
                      {d.model}
                      {d.modelAssigned ? '' : ' (default)'}
                    </td>
                    <td>
                      {t && t.state === 'sending' ? (
                        <ProgressBar value={t.totalBytes ? t.bytes / t.totalBytes : 0} label={transferText(t)} testId={`transfer-${d.id}`} />
                      ) : t ? (
                        <span data-testid={`transfer-${d.id}`}>{transferText(t)}</span>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td>
                      {d.modelAssigned ? (
                        <button type="button" className="secondary" disabled={busy} onClick={() => void use(null, d.id)}>
                          back to the default
                        </button>
                      ) : null}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        )}
      </Guard>
    </Card>
  )
}

export function Models(): React.JSX.Element {
  const api = useApi()
  const models = useQuery<LibraryModelView[]>(
    () => api.models({}),
    'models',
    (e) => e.type === 'devices'
  )
  const [selected, setSelected] = useState<string | null>(null)
  const [exit, setExit] = useState<number | null>(null)
  useEffect(() => {
    if (!selected && models.data?.length) setSelected((models.data.find((m) => m.serving) ?? models.data[0]!).id)
  }, [models.data, selected])
  const cuts = useQuery<ModelCutsView>(selected ? () => api.modelCuts({ model: selected }) : null, selected ?? '')
  return (
    <>
      <Card title="Library" testId="models-card">
        <p className="hint">
          Shipped models and the ones imported into this console's data directory (<code>npx edgent model import model.onnx …</code>).
        </p>
        <Guard q={models} what="models" empty={(d) => (d.length ? null : 'No model in the library.')}>
          {(d) => (
            <table className="table" data-testid="models-table">
              <thead>
                <tr>
                  <th>model</th>
                  <th>source</th>
                  <th>input</th>
                  <th>exits (accuracy)</th>
                  <th>ONNX bytes</th>
                  <th>sha256</th>
                  <th>devices</th>
                </tr>
              </thead>
              <tbody>
                {d.map((m) => (
                  <tr key={m.id} className={m.id === selected ? 'selected' : ''} data-testid={`model-${m.id}`}>
                    <td>
                      <button type="button" className="link" onClick={() => setSelected(m.id)}>
                        {m.id}
                      </button>
                      {m.serving ? ' (default)' : ''}
                    </td>
                    <td>{m.source}</td>
                    <td>{m.inputShape.join('×')}</td>
                    <td>{m.exits.map((e) => `${e.exit}: ${accuracyText(e)}`).join(', ')}</td>
                    <td>{m.onnxBytes?.toLocaleString() ?? '—'}</td>
                    <td title={m.sha256 ?? ''}>{m.sha256?.slice(0, 12) ?? '—'}</td>
                    <td>{m.devices.join(', ') || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Guard>
      </Card>
      {selected ? <Assignment selected={selected} onChanged={models.reload} /> : null}
      {selected ? (
        <Card
          title={`Cut points of ${selected}`}
          testId="cuts-card"
          actions={
            cuts.data ? (
              <select value={exit ?? cuts.data.exits.length} onChange={(e) => setExit(Number(e.target.value))} data-testid="cuts-exit">
                {cuts.data.exits.map((e) => (
                  <option key={e.exit} value={e.exit}>
                    exit {e.exit} ({accuracyText(e)})
                  </option>
                ))}
              </select>
            ) : null
          }
        >
          <Guard q={cuts} what="cut points">
            {(c) => <CutChart cuts={c} exit={exit ?? c.exits.length} />}
          </Guard>
        </Card>
      ) : null}
    </>
  )
}
