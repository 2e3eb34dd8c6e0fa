import { useEffect, useState } from 'react'
import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { LibraryModelView, ModelCutsView } from '../../../shared/console-api'
import { Card, Guard, fmtPct } from '../components/ui'
import { useApi, useQuery } from '../hooks'

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

export function Models(): React.JSX.Element {
  const api = useApi()
  const models = useQuery<LibraryModelView[]>(() => api.models({}), 'models')
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
                </tr>
              </thead>
              <tbody>
                {d.map((m) => (
                  <tr key={m.id} className={m.id === selected ? 'selected' : ''} data-testid={`model-${m.id}`}>
                    <td>
                      <button type="button" className="link" onClick={() => setSelected(m.id)}>
                        {m.id}
                      </button>
                      {m.serving ? ' (served)' : ''}
                    </td>
                    <td>{m.source}</td>
                    <td>{m.inputShape.join('×')}</td>
                    <td>{m.exits.map((e) => `${e.exit}: ${accuracyText(e)}`).join(', ')}</td>
                    <td>{m.onnxBytes?.toLocaleString() ?? '—'}</td>
                    <td title={m.sha256 ?? ''}>{m.sha256?.slice(0, 12) ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Guard>
      </Card>
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
