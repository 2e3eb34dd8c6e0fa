import { useMemo, useState } from 'react'
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { CostTable } from '../../../shared/algorithms/planner'
import { configurationMap, latencyOf, plan, type Conditions, type PlannerMode } from '../../../shared/algorithms/planner'
import type { DeviceView, ProfileView } from '../../../shared/contracts/console-api'
import { Card, Empty, ErrorBox, Guard, Stat, StaleCalibration, fmtKbps, fmtMs, fmtPct, LEGEND_ROOM, TOP_LEGEND } from '../components/ui'
import { errorMessage } from '../../../shared/errors'
import { useApi, useQuery } from '../hooks'
import { tailTable, type TailModel } from '../../../shared/algorithms/tail'

/** Log-scale sliders: position 0..1000 ↔ value between lo and hi. */
const toLog = (pos: number, lo: number, hi: number) => lo * (hi / lo) ** (pos / 1000)
const fromLog = (v: number, lo: number, hi: number) => Math.round((1000 * Math.log(v / lo)) / Math.log(hi / lo))
const BW = [10, 100_000] as const
const REQ = [5, 2000] as const
const grid = (lo: number, hi: number, n: number) => Array.from({ length: n }, (_, i) => lo * (hi / lo) ** (i / (n - 1)))
/** Ticks in the axis's own unit (kbps): 10, 100, 1,000 … — a "k" or "M" suffix read as kilo-kbps. */
const kbpsTick = (v: number) => v.toLocaleString('en')

/** The log-scale uplink axis both bandwidth figures share. */
const bandwidthAxis = (
  <XAxis
    dataKey="kbps"
    type="number"
    scale="log"
    domain={[BW[0], BW[1]]}
    ticks={[10, 100, 1000, 10000, 100000]}
    tickFormatter={kbpsTick}
    label={{ value: 'uplink bandwidth (kbps)', position: 'insideBottom', offset: -12 }}
  />
)

function Figures(props: { table: CostTable; latencyMs: number; uplinkKbps: number; mode: PlannerMode }): React.JSX.Element {
  const { table, latencyMs, uplinkKbps, mode } = props
  const cond: Conditions = { uplinkKbps, latencyMs }
  const chosen = plan(table, cond, mode)
  const last = table.exits[table.exits.length - 1]!
  const finalExit = last[0]!.exit
  const bwSeries = useMemo(
    () =>
      grid(BW[0], BW[1], 81).map((kbps) => {
        const p = plan(table, { uplinkKbps: kbps, latencyMs }, mode)!
        const edgeOnly = last[0]!
        const deviceOnly = last[last[0]!.layers]!
        return {
          kbps,
          exit: p.exit,
          deviceLayers: p.deviceLayers,
          predictedMs: p.predictedMs,
          edgeOnlyMs: latencyOf(edgeOnly, { uplinkKbps: kbps, latencyMs }),
          deviceOnlyMs: latencyOf(deviceOnly, { uplinkKbps: kbps, latencyMs })
        }
      }),
    [table, latencyMs, mode, last]
  )
  const reqSeries = useMemo(
    () =>
      grid(REQ[0], REQ[1], 81).map((req) => {
        const p = plan(table, { uplinkKbps, latencyMs: req }, mode)!
        return { req, exit: p.feasible ? p.exit : null, accuracy: p.feasible ? p.accuracy * 100 : null, deviceLayers: p.feasible ? p.deviceLayers : null }
      }),
    [table, uplinkKbps, mode]
  )
  const accs = table.exits.map((g) => g[0]!.accuracy * 100)
  const accDomain: [number, number] = [Math.floor(Math.min(...accs)) - 1, Math.ceil(Math.max(...accs)) + 1]
  const map = useMemo(() => configurationMap(table, { latencyMs, fromKbps: BW[0], toKbps: BW[1], mode }), [table, latencyMs, mode])
  if (!chosen) return <Empty>No plan: the model has no exit.</Empty>
  const b = chosen.breakdown
  const breakdown = [
    { name: 'plan', device: b.deviceMs, upload: b.uploadMs, edge: b.edgeMs, download: b.downloadMs, overhead: b.overheadMs, 'encode/decode': b.codecMs ?? 0 }
  ]
  const sends = chosen.deviceLayers < chosen.layers
  const layersOf = (exit: number | null) => table.exits.find((g) => g[0]!.exit === exit)?.[0]?.layers
  return (
    <>
      <Card title="The plan at these conditions" testId="plan-card">
        <div className="stats" data-testid="plan-choice" data-exit={chosen.exit} data-device-layers={chosen.deviceLayers} data-codec={chosen.codec}>
          <Stat
            label={chosen.policy ? 'exits on confidence' : 'exit'}
            value={
              chosen.policy
                ? `policy ${chosen.policy.index}: ${chosen.policy.mixture.map((x) => `${fmtPct(x.share, 0)} at exit ${x.exit} (${x.side})`).join(', ')}`
                : `${chosen.exit} of ${table.exits.length}`
            }
            title={
              chosen.policy
                ? `thresholds ${chosen.policy.thresholds.map((t) => t ?? '–').join(' / ')}: a frame leaves at the first exit this confident`
                : undefined
            }
            testId="plan-exit"
          />
          <Stat
            label="partition"
            value={
              chosen.deviceLayers === 0
                ? `edge only (0/${chosen.layers})`
                : chosen.deviceLayers === chosen.layers
                  ? `device only (${chosen.layers}/${chosen.layers})`
                  : `${chosen.deviceLayers}/${chosen.layers} layers on device`
            }
            testId="plan-partition"
          />
          <Stat label="predicted latency" value={`${fmtMs(chosen.predictedMs)} ms`} />
          <Stat
            label={chosen.codec === 'f32' || chosen.codec === 'u8' ? 'accuracy (exit)' : `accuracy (exit, ${chosen.codec} at the cut)`}
            value={fmtPct(chosen.accuracy)}
          />
          <Stat label="requirement" value={chosen.feasible ? <span className="ok">met</span> : <span className="bad">not met: fastest plan</span>} />
          <Stat label="upload" value={`${chosen.uploadBytes} B`} />
          <Stat label="sent as" value={sends ? chosen.codec : '— (nothing sent)'} testId="plan-codec" />
        </div>
        <ResponsiveContainer width="100%" height={120}>
          <BarChart data={breakdown} layout="vertical" margin={{ left: 16, right: 24, top: LEGEND_ROOM, bottom: 16 }}>
            <XAxis type="number" label={{ value: 'predicted latency (ms)', position: 'insideBottom', offset: -10 }} />
            <YAxis type="category" dataKey="name" hide />
            <Tooltip formatter={(v) => `${fmtMs(Number(v))} ms`} />
            <Legend {...TOP_LEGEND} />
            <Bar dataKey="device" stackId="a" fill="#2f6fdf" isAnimationActive={false} />
            <Bar dataKey="upload" stackId="a" fill="#9b59b6" isAnimationActive={false} />
            <Bar dataKey="edge" stackId="a" fill="#27ae60" isAnimationActive={false} />
            <Bar dataKey="download" stackId="a" fill="#c39bd3" isAnimationActive={false} />
            <Bar dataKey="overhead" stackId="a" fill="#999" isAnimationActive={false} />
            {b.codecMs ? <Bar dataKey="encode/decode" stackId="a" fill="#e67e22" isAnimationActive={false} /> : null}
            <ReferenceLine x={latencyMs} stroke="#d94040" strokeDasharray="4 2" label={{ value: 'requirement', position: 'top', fontSize: 10 }} />
          </BarChart>
        </ResponsiveContainer>
        {table.codecNotes?.length ? (
          <p className="muted" data-testid="codec-notes">
            Codecs: {table.codecNotes.join('; ')}.
          </p>
        ) : null}
      </Card>
      <div className="grid2">
        <Card title="Selection under different bandwidths" testId="fig-selection-bandwidth">
          <ResponsiveContainer width="100%" height={260}>
            <LineChart data={bwSeries} margin={{ top: LEGEND_ROOM, right: 16, bottom: 24, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" />
              {bandwidthAxis}
              <YAxis yAxisId="exit" domain={[0, table.exits.length]} allowDecimals={false} label={{ value: 'exit', angle: -90, position: 'insideLeft' }} />
              <YAxis yAxisId="layers" orientation="right" allowDecimals={false} label={{ value: 'device layers', angle: 90, position: 'insideRight' }} />
              <Tooltip labelFormatter={(v) => fmtKbps(Number(v))} />
              <Legend {...TOP_LEGEND} />
              <Line yAxisId="exit" type="stepAfter" dataKey="exit" name="exit" stroke="#2f6fdf" dot={false} isAnimationActive={false} />
              <Line yAxisId="layers" type="stepAfter" dataKey="deviceLayers" name="device layers" stroke="#f0a030" dot={false} isAnimationActive={false} />
              <ReferenceLine yAxisId="exit" x={uplinkKbps} stroke="#d94040" strokeDasharray="4 2" />
            </LineChart>
          </ResponsiveContainer>
        </Card>
        <Card title="Model runtime under different bandwidths" testId="fig-runtime-bandwidth">
          <ResponsiveContainer width="100%" height={260}>
            <LineChart data={bwSeries} margin={{ top: LEGEND_ROOM, right: 16, bottom: 24, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" />
              {bandwidthAxis}
              <YAxis
                scale="log"
                domain={['auto', 'auto']}
                allowDataOverflow
                width={64}
                tickFormatter={(v: number) => fmtMs(v)}
                label={{ value: 'latency (ms)', angle: -90, position: 'insideLeft', offset: 0 }}
              />
              <Tooltip labelFormatter={(v) => fmtKbps(Number(v))} formatter={(v) => `${fmtMs(Number(v))} ms`} />
              <Legend {...TOP_LEGEND} />
              <Line dataKey="predictedMs" name="Edgent's plan" stroke="#2f6fdf" dot={false} strokeWidth={2} isAnimationActive={false} />
              <Line
                dataKey="edgeOnlyMs"
                name={`edge only, f32 input (exit ${finalExit})`}
                stroke="#27ae60"
                dot={false}
                strokeDasharray="5 3"
                isAnimationActive={false}
              />
              <Line
                dataKey="deviceOnlyMs"
                name={`device only (exit ${finalExit})`}
                stroke="#f0a030"
                dot={false}
                strokeDasharray="5 3"
                isAnimationActive={false}
              />
              <ReferenceLine y={latencyMs} stroke="#d94040" strokeDasharray="4 2" label={{ value: 'requirement', fontSize: 10, position: 'insideTopRight' }} />
            </LineChart>
          </ResponsiveContainer>
        </Card>
        <Card title="Selection under different latency requirements" testId="fig-selection-requirement">
          <ResponsiveContainer width="100%" height={260}>
            <LineChart data={reqSeries} margin={{ top: LEGEND_ROOM, right: 16, bottom: 24, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis
                dataKey="req"
                type="number"
                scale="log"
                domain={[REQ[0], REQ[1]]}
                ticks={[5, 10, 20, 50, 100, 200, 500, 1000, 2000]}
                label={{ value: 'latency requirement (ms)', position: 'insideBottom', offset: -12 }}
              />
              <YAxis yAxisId="exit" domain={[0, table.exits.length]} allowDecimals={false} label={{ value: 'exit', angle: -90, position: 'insideLeft' }} />
              <YAxis
                yAxisId="acc"
                orientation="right"
                domain={accDomain}
                tickFormatter={(v: number) => `${v.toFixed(1)}`}
                label={{ value: 'accuracy (%)', angle: 90, position: 'insideRight' }}
              />
              <Tooltip labelFormatter={(v) => `${fmtMs(Number(v))} ms`} />
              <Legend {...TOP_LEGEND} />
              <Line
                yAxisId="exit"
                type="stepAfter"
                dataKey="exit"
                name="exit (none: infeasible)"
                stroke="#2f6fdf"
                dot={false}
                isAnimationActive={false}
                connectNulls={false}
              />
              <Line
                yAxisId="acc"
                type="stepAfter"
                dataKey="accuracy"
                name="accuracy (%)"
                stroke="#27ae60"
                dot={false}
                isAnimationActive={false}
                connectNulls={false}
              />
              <ReferenceLine yAxisId="exit" x={latencyMs} stroke="#d94040" strokeDasharray="4 2" />
            </LineChart>
          </ResponsiveContainer>
        </Card>
        <Card title={`Configuration map at ${fmtMs(latencyMs)} ms`} testId="config-map">
          <table className="table compact">
            <thead>
              <tr>
                <th>uplink from</th>
                <th>to</th>
                <th>exit</th>
                <th>device layers</th>
                <th>sent as</th>
                <th>requirement</th>
              </tr>
            </thead>
            <tbody>
              {map.map((iv) => {
                const here = uplinkKbps >= iv.fromKbps && (uplinkKbps < iv.toKbps || iv.toKbps === BW[1])
                return (
                  <tr key={iv.fromKbps} className={here ? 'current' : ''}>
                    <td>{fmtKbps(iv.fromKbps)}</td>
                    <td>{fmtKbps(iv.toKbps)}</td>
                    <td>{iv.exit ?? '—'}</td>
                    <td>{iv.deviceLayers ?? '—'}</td>
                    <td data-testid="map-codec">{iv.codec === null || iv.deviceLayers === layersOf(iv.exit) ? '—' : iv.codec}</td>
                    <td>{iv.feasible ? 'met' : <span className="bad">not met</span>}</td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </Card>
      </div>
    </>
  )
}

export function Planner(props: { agent: string | null }): React.JSX.Element {
  const api = useApi()
  const [bwPos, setBwPos] = useState(fromLog(1000, BW[0], BW[1]))
  const [reqPos, setReqPos] = useState(fromLog(100, REQ[0], REQ[1]))
  const [mode, setMode] = useState<PlannerMode>('edgent')
  // Tail-aware planning: the requirement at a percentile of inferences (50: the typical one).
  const [percentile, setPercentile] = useState(50)
  const uplinkKbps = toLog(bwPos, BW[0], BW[1])
  const latencyMs = toLog(reqPos, REQ[0], REQ[1])
  const profiles = useQuery<ProfileView[]>(
    props.agent ? () => api.profiles({ agent: props.agent! }) : null,
    props.agent ?? '',
    (e) => e.type === 'campaign' && e.data.status === 'done'
  )
  const devices = useQuery<DeviceView[]>(
    () => api.devices({}),
    'devices',
    (e) => e.type === 'devices' || e.type === 'campaign'
  )
  const device = devices.data?.find((d) => d.id === props.agent) ?? null
  const source = device?.latencySource ?? null
  const sourceKey = source ? `${source.kind}:${source.profileId}` : ''
  const [sourceError, setSourceError] = useState<string | null>(null)
  const table = useQuery<CostTable>(
    props.agent ? () => api.costTable({ agent: props.agent! }) : null,
    `${props.agent}/${sourceKey}`,
    (e) => (e.type === 'inferences' && e.data.id === props.agent) || e.type === 'devices'
  )
  const tail = useQuery<TailModel>(
    props.agent && percentile !== 50 ? () => api.tail({ agent: props.agent!, percentile }) : null,
    `${props.agent}/${percentile}`,
    (e) => e.type === 'inferences' && e.data.id === props.agent
  )
  const choose = async (value: string) => {
    setSourceError(null)
    try {
      // biome-ignore lint/correctness/useHookAtTopLevel: a console API method (selects a profile), not a React hook
      await api.useProfile({ agent: props.agent!, profile: value === 'measured' ? null : value })
      devices.reload()
    } catch (err) {
      setSourceError(errorMessage(err))
    }
  }
  return (
    <>
      <Card title="Conditions" testId="planner-controls">
        {device ? (
          <p data-testid="planner-model">
            Planning <strong>{table.data?.model ?? device.model}</strong> for {device.id}{' '}
            <span className="muted">({device.modelAssigned ? 'the model assigned to it' : 'the default model'}; the Models page assigns another)</span>
          </p>
        ) : null}
        <div className="controls">
          <label className="slider">
            <span>
              Uplink bandwidth <strong data-testid="bandwidth-value">{fmtKbps(uplinkKbps)}</strong>
            </span>
            <input
              type="range"
              min={0}
              max={1000}
              value={bwPos}
              onChange={(e) => setBwPos(Number(e.target.value))}
              data-testid="bandwidth"
              aria-label="uplink bandwidth (kbps, log scale)"
            />
          </label>
          <label className="slider">
            <span>
              Latency requirement <strong data-testid="requirement-value">{fmtMs(latencyMs)} ms</strong>
            </span>
            <input
              type="range"
              min={0}
              max={1000}
              value={reqPos}
              onChange={(e) => setReqPos(Number(e.target.value))}
              data-testid="requirement"
              aria-label="latency requirement (ms, log scale)"
            />
          </label>
          <label>
            Latencies from
            <select
              value={source?.kind === 'profile' ? (source.profileId ?? 'measured') : 'measured'}
              onChange={(e) => void choose(e.target.value)}
              disabled={!props.agent}
              data-testid="latency-source"
            >
              <option value="measured">measured per-layer tables</option>
              {(profiles.data ?? []).map((p) => (
                <option key={p.id} value={p.id}>
                  profile {p.id} ({p.campaignKind} campaign)
                </option>
              ))}
            </select>
          </label>
          <label>
            Requirement holds for
            <select value={percentile} onChange={(e) => setPercentile(Number(e.target.value))} data-testid="planner-percentile">
              <option value={50}>the typical inference (p50)</option>
              <option value={90}>90 % of inferences</option>
              <option value={95}>95 % of inferences</option>
              <option value={99}>99 % of inferences</option>
            </select>
          </label>
          <label>
            Planner
            <select value={mode} onChange={(e) => setMode(e.target.value as PlannerMode)}>
              <option value="edgent">Edgent (max accuracy, then min latency)</option>
              <option value="paper">Algorithm 1 as printed</option>
            </select>
          </label>
        </div>
        {sourceError ? <ErrorBox error={sourceError} /> : null}
        {source?.problem ? <ErrorBox error={source.problem} /> : null}
        {props.agent ? <StaleCalibration agent={props.agent} stale={source?.stale} /> : null}
        <p className="muted">
          Latencies are the console's cost table for {props.agent ?? 'the device'}:{' '}
          {source?.kind === 'profile'
            ? `the regressions of profile ${source.profileId} (fitted by a campaign)`
            : 'per-layer times measured on the device and on this machine'}
          , corrected online from co-inference. Accuracy is the exit's measured test accuracy, less what a lossy codec at the cut measured (model verify
          --codecs).
        </p>
        {percentile !== 50 && tail.data ? (
          <p className="muted" data-testid="planner-tail">
            {tail.data.why
              ? `At p${percentile}: ${tail.data.why}.`
              : `At p${percentile}, from the device's measured dispersion over ${tail.data.samples} inferences of ${tail.data.plans} plans: device segments ×${tail.data.deviceFactor.toFixed(2)}, edge segments ×${tail.data.edgeFactor.toFixed(2)}, link and messaging +${fmtMs(tail.data.extraMs)} ms.`}
          </p>
        ) : null}
        {percentile !== 50 && tail.error ? <ErrorBox error={tail.error} /> : null}
      </Card>
      {!props.agent ? (
        <Empty>Pair a device (Fleet) to plan for it.</Empty>
      ) : (
        <Guard q={table} what={`the cost table of ${props.agent} (the first time, the device times every layer)`}>
          {(t) => <Figures table={percentile !== 50 && tail.data ? tailTable(t, tail.data) : t} latencyMs={latencyMs} uplinkKbps={uplinkKbps} mode={mode} />}
        </Guard>
      )}
    </>
  )
}
