import { useMemo, useState } from 'react'
import { Bar, BarChart, CartesianGrid, Legend, Line, ComposedChart, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts'
import type {
  Calibration as CalibrationData,
  CampaignStatus,
  ErrorStats,
  FitReport,
  LayerLatencies,
  ModelView,
  PlansSummary
} from '../../../shared/contracts/console-api'
import { Card, Empty, Guard, fmtMs, fmtPct, LEGEND_ROOM, TOP_LEGEND } from '../components/ui'
import { useApi, useQuery } from '../hooks'
import { REGRESSOR_TEXT } from '../../../shared/algorithms/regressors'

const SIDE_TEXT = { device: 'Device', edge: 'Edge (this machine)' } as const
/** Axis ticks a reader takes in at a glance: 950, 12.5k, 3.2M (not 1e+4). */
const compactTick = (v: number): string => new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 2 }).format(v)

/** What the points and lines of every fit chart are (one legend for the grid). */
function FitLegend(): React.JSX.Element {
  return (
    <p className="fit-legend small" data-testid="fit-legend">
      <span className="dot" style={{ background: '#2f6fdf' }} /> fitted on (training points) <span className="dot" style={{ background: '#d94040' }} /> held out
      (checked on, not fitted) <span className="dash" /> the fitted line (one variable), or y = x against the fit's prediction (several)
    </p>
  )
}

const FEATURE_UNITS: Record<string, string> = {
  inputElements: 'input elements',
  outputElements: 'output elements',
  kernelOverStrideSquaredTimesFilters: '(kernel/stride)² × filters',
  modelBytes: 'model bytes'
}

function LayerChart(props: { data: LayerLatencies; side: 'device' | 'edge' }): React.JSX.Element {
  const rows = props.data.layers.map((l) => ({
    id: l.id,
    type: l.type,
    measured: props.side === 'device' ? l.deviceMeasuredMs : l.edgeMeasuredMs,
    predicted: props.side === 'device' ? l.devicePredictedMs : l.edgePredictedMs
  }))
  const total = (k: 'measured' | 'predicted') => rows.reduce((s, r) => s + (r[k] ?? 0), 0)
  const missing = rows.filter((r) => r.predicted === null).map((r) => r.id)
  return (
    <div className="chart-block" data-testid={`layer-chart-${props.side}`} data-layers={rows.length}>
      <h3>
        {SIDE_TEXT[props.side]} · sum measured {fmtMs(total('measured'))} ms, predicted {fmtMs(total('predicted'))} ms
      </h3>
      <ResponsiveContainer width="100%" height={300}>
        <BarChart data={rows} margin={{ top: LEGEND_ROOM, right: 16, bottom: 8, left: 16 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis
            dataKey="id"
            angle={-50}
            textAnchor="end"
            interval={0}
            height={60}
            tick={{ fontSize: 10 }}
            label={{ value: 'layer', position: 'insideBottomRight', offset: 0, fontSize: 11 }}
          />
          <YAxis label={{ value: 'latency (ms)', angle: -90, position: 'insideLeft' }} tickFormatter={(v: number) => fmtMs(v)} />
          <Tooltip formatter={(v) => `${fmtMs(Number(v))} ms`} />
          <Legend {...TOP_LEGEND} />
          <Bar
            dataKey="measured"
            name="measured (single-layer slice, median)"
            fill="#2f6fdf"
            className="bar-measured"
            isAnimationActive={false}
            minPointSize={1}
          />
          <Bar
            dataKey="predicted"
            name={`predicted (${props.data.profile.fitted ? 'fitted profile' : 'paper-2018, not fitted here'})`}
            fill="#f0a030"
            className="bar-predicted"
            isAnimationActive={false}
            minPointSize={1}
          />
        </BarChart>
      </ResponsiveContainer>
      {missing.length ? <p className="muted small">No prediction for {missing.join(', ')}: the profile has no regression for their type.</p> : null}
    </div>
  )
}

function FitChart(props: { cal: CalibrationData; side: 'device' | 'edge'; fit: FitReport }): React.JSX.Element {
  const { cal, side, fit } = props
  const names = cal.featureNames[fit.key] ?? []
  const reg = cal.regressions.find((r) => r.side === side && r.key === fit.key)
  const pts = cal.points.filter((p) => p.side === side && p.key === fit.key)
  const single = names.length === 1
  // One feature: measured against it, with the fitted line. Several: measured against predicted, with y = x.
  const xOf = (p: (typeof pts)[number]) => (single ? p.features[0]! : (p.predictedMs ?? 0))
  const train = pts.filter((p) => !p.heldOut).map((p) => ({ x: xOf(p), y: p.runMs }))
  const held = pts.filter((p) => p.heldOut).map((p) => ({ x: xOf(p), y: p.runMs }))
  const xs = pts.map(xOf)
  const lo = Math.min(...xs)
  const hi = Math.max(...xs)
  const line =
    reg && pts.length
      ? single
        ? [lo, hi].map((x) => ({ x, y: Math.max(0, reg.intercept + reg.coefficients[0]! * x) }))
        : [lo, hi].map((x) => ({ x, y: x }))
      : []
  const xLabel = single ? (FEATURE_UNITS[names[0]!] ?? names[0]!) : 'predicted by the fit (ms)'
  return (
    <div className="fit" data-testid={`fit-${side}-${fit.key}`}>
      <h4>
        {fit.key}{' '}
        <span className="muted small">
          n {fit.n} · R² {fit.r2 === null ? '—' : fit.r2.toFixed(3)} · held-out ({fit.heldOutN}) MAPE {fmtPct(fit.heldOutMape)} · training MAPE{' '}
          {fmtPct(fit.mape)}
        </span>
      </h4>
      {fit.error ? (
        <p className={fit.fallback ? 'small warn' : 'muted small'} data-testid={fit.fallback ? `fallback-${fit.side}-${fit.key}` : undefined}>
          {fit.fallback ? 'Fell back: ' : ''}
          {fit.error}
        </p>
      ) : null}
      {pts.length === 0 ? (
        <Empty>
          No measured point to plot for {fit.key} on this side
          {fit.n > 0 ? ' (its fit came from points this campaign no longer holds)' : ''}.
        </Empty>
      ) : (
        <ResponsiveContainer width="100%" height={200}>
          <ComposedChart margin={{ top: 4, right: 12, bottom: 28, left: 14 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis
              type="number"
              dataKey="x"
              // One distinct x (sizes that never vary): a window around it, else every tick reads the same.
              domain={lo === hi ? [lo / 2, lo * 1.5] : ['auto', 'auto']}
              {...(lo === hi ? { ticks: [lo / 2, lo, lo * 1.5] } : {})}
              tickFormatter={compactTick}
              label={{ value: xLabel, position: 'insideBottom', offset: -16, fontSize: 11 }}
            />
            <YAxis
              type="number"
              dataKey="y"
              width={52}
              label={{ value: 'measured (ms)', angle: -90, position: 'insideLeft', offset: -6, fontSize: 11, style: { textAnchor: 'middle' } }}
              tickFormatter={(v: number) => fmtMs(v)}
            />
            <Tooltip formatter={(v) => fmtMs(Number(v))} />
            <Scatter data={train} name="fitted on" fill="#2f6fdf" isAnimationActive={false} />
            <Scatter data={held} name="held out" fill="#d94040" isAnimationActive={false} />
            <Line data={line} dataKey="y" name={single ? 'fitted line' : 'y = x'} stroke="#222" dot={false} isAnimationActive={false} />
          </ComposedChart>
        </ResponsiveContainer>
      )}
    </div>
  )
}

const PART_TEXT = { deviceMs: 'Device segments', edgeMs: 'Edge segments', e2eMs: 'End to end' } as const

/** One part of the plans (device segments, edge segments, end to end): measured against predicted, with y = x. */
function PlanScatter(props: { plans: PlansSummary; part: 'deviceMs' | 'edgeMs' | 'e2eMs' }): React.JSX.Element {
  const { plans, part } = props
  const has = (x: PlansSummary['points'][number]) => (part === 'deviceMs' ? x.deviceLayers > 0 : part === 'edgeMs' ? x.deviceLayers < x.layers : true)
  const pts = plans.points
    .filter(has)
    .map((x) => ({ x: x.predicted[part], y: x.measured[part], plan: `exit ${x.exit}, ${x.deviceLayers}/${x.layers} on the device` }))
  const side = part === 'deviceMs' ? 'device' : part === 'edgeMs' ? 'edge' : 'e2e'
  const stats: ErrorStats = plans.errors[side]
  const ceiling = plans.retest?.[side]
  // Log axes: the plans span three orders of magnitude (a softmax alone to a whole exit).
  const shown = pts.filter((p) => p.x > 0 && p.y > 0)
  const all = shown.flatMap((p) => [p.x, p.y])
  const lo = all.length ? Math.min(...all) / 1.2 : 0.01
  const hi = all.length ? Math.max(...all) * 1.2 : 1
  return (
    <div className="fit" data-testid={`plans-${part}`} data-points={shown.length}>
      <h4>
        {PART_TEXT[part]}{' '}
        <span className="muted small" data-testid={`plans-${part}-error`}>
          {stats.n} plans · {fmtPct(stats.within10)} within ±10 % ({fmtPct(stats.within5)} within ±5 %) · median error {fmtPct(stats.median)} · p90{' '}
          {fmtPct(stats.p90)}
        </span>
        {ceiling ? (
          <span className="muted small" data-testid={`plans-${part}-retest`}>
            {' '}
            · test–retest {fmtPct(ceiling.within10)} within ±10 %
          </span>
        ) : null}
      </h4>
      <ResponsiveContainer width="100%" height={220}>
        <ComposedChart margin={{ top: 4, right: 12, bottom: 28, left: 14 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis
            type="number"
            dataKey="x"
            scale="log"
            domain={[lo, hi]}
            allowDataOverflow
            tickFormatter={(v: number) => fmtMs(v)}
            label={{ value: 'predicted, no online correction (ms, log)', position: 'insideBottom', offset: -16, fontSize: 11 }}
          />
          <YAxis
            type="number"
            dataKey="y"
            scale="log"
            domain={[lo, hi]}
            allowDataOverflow
            width={52}
            label={{ value: 'measured (ms)', angle: -90, position: 'insideLeft', offset: -6, fontSize: 11, style: { textAnchor: 'middle' } }}
            tickFormatter={(v: number) => fmtMs(v)}
          />
          <Tooltip formatter={(v) => `${fmtMs(Number(v))} ms`} labelFormatter={() => ''} />
          <Scatter data={shown} name="plans" fill="#2f6fdf" isAnimationActive={false} />
          <Line
            data={[
              { x: lo, y: lo },
              { x: hi, y: hi }
            ]}
            dataKey="y"
            name="y = x"
            stroke="#222"
            dot={false}
            isAnimationActive={false}
          />
        </ComposedChart>
      </ResponsiveContainer>
      {shown.length < pts.length ? (
        <p className="muted small">{pts.length - shown.length} plans predicted or measured at 0 ms are not on the log axes.</p>
      ) : null}
    </div>
  )
}

/** The latest plans campaign of the device: each part predicted against measured, and every predictor scored on it. */
function PlansCheck(props: { c: CampaignStatus }): React.JSX.Element {
  const p = props.c.plans!
  const both = (e: ErrorStats) => `${fmtPct(e.within10)} · ${fmtPct(e.median)} / ${fmtPct(e.p90)}`
  return (
    <>
      <p className="muted">
        Every (exit, device layers) of the served model co-inferred {p.inferencesPerPlan} times ({p.passes} passes over the plans, after {p.warmupPerPass}{' '}
        warm-up inferences each) at {p.uplinkKbps.toLocaleString('en')} kbps (plans campaign of {new Date(props.c.startedAt).toLocaleString()}), each part's
        median against what {p.source.predictor} predicted, without online correction.
        {p.errorsWithoutProbes
          ? ` Without the ${p.errorsWithoutProbes.probes.length} plans its campaign's link stage co-inferred: device ${fmtPct(p.errorsWithoutProbes.device.median)}, edge ${fmtPct(p.errorsWithoutProbes.edge.median)}, end to end ${fmtPct(p.errorsWithoutProbes.e2e.median)} (median).`
          : ''}
        {p.retest
          ? ` The measurement's own noise (test–retest: each plan's pass medians against its later passes', ${p.retest.e2e.n} pairs): ${fmtPct(p.retest.device.within10)} of device segments, ${fmtPct(p.retest.edge.within10)} of edge segments and ${fmtPct(p.retest.e2e.within10)} end to end within ±10 % of themselves — no prediction can agree more often.`
          : ''}
      </p>
      <div className="grid3">
        <PlanScatter plans={p} part="deviceMs" />
        <PlanScatter plans={p} part="edgeMs" />
        <PlanScatter plans={p} part="e2eMs" />
      </div>
      {p.predictors?.length ? (
        <table className="table" data-testid="predictors">
          <thead>
            <tr>
              <th>predictor, scored on these plans</th>
              <th>device segment (within ±10 % · median / p90 error)</th>
              <th>edge segment</th>
              <th>end to end</th>
              <th>grid held-out MAPE (device / edge)</th>
            </tr>
          </thead>
          <tbody>
            {p.predictors.map((q) => (
              <tr key={q.name} data-current={q.current ? 'yes' : undefined}>
                <td>
                  {q.current ? <strong title="the device plans with this one now">● </strong> : null}
                  {q.name}
                </td>
                <td>{both(q.errors.device)}</td>
                <td>{both(q.errors.edge)}</td>
                <td>{both(q.errors.e2e)}</td>
                <td>{q.gridHeldOut ? `${fmtPct(q.gridHeldOut.device)} / ${fmtPct(q.gridHeldOut.edge)}` : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {p.choice ? (
        <p className="muted" data-testid="predictor-choice">
          {p.choice.changed
            ? `This campaign switched the profile to ${REGRESSOR_TEXT[p.choice.regressor]} (${p.choice.why}).`
            : `The profile keeps ${REGRESSOR_TEXT[p.choice.regressor]}: ${p.choice.why}.`}
        </p>
      ) : null}
    </>
  )
}

/**
 * Why the per-layer bars and the plans panel can disagree: the bars are the regressions alone against
 * layers timed in isolation; plans are predicted with the campaign's link stage on top (per side a fixed
 * cost and a scale fitted on real plans) and checked end to end.
 */
function LayerVsPlans(props: { profileId: string | null; campaigns: CampaignStatus[] }): React.JSX.Element | null {
  if (!props.profileId) return null
  const seg = props.campaigns.find((c) => c.profileId === props.profileId)?.link?.segments
  const side = (name: 'device' | 'edge') => {
    const s = seg?.[name]
    return s ? `${name} ×${s.scale.toFixed(2)} ${s.fixedMs >= 0 ? '+' : '−'} ${Math.abs(s.fixedMs).toFixed(2)} ms` : null
  }
  const sides = [side('device'), side('edge')].filter(Boolean)
  return (
    <p className="muted" data-testid="layer-vs-plans">
      These bars are the regressions alone, each layer against its time alone (warm, in isolation). A plan runs layers back to back inside one session, after a
      message and a cold start, so plans are predicted with the link stage on top
      {sides.length ? ` (fitted on real plans: ${sides.join(', ')})` : ' (none fitted for this profile: plans use the regressions alone)'} and checked end to
      end in "Predictions against real plans" below: a per-layer gap that the link stage absorbs does not show there.
    </p>
  )
}

export function Calibration(props: { agent: string | null }): React.JSX.Element {
  const api = useApi()
  const model = useQuery<ModelView>(() => api.modelInfo({}), 'model')
  const [exit, setExit] = useState<number | null>(null)
  const exitNo = exit ?? (model.data ? Math.max(...model.data.exits.map((e) => e.exit)) : null)
  const layers = useQuery<LayerLatencies>(
    props.agent && exitNo ? () => api.layerLatencies({ agent: props.agent!, exit: exitNo }) : null,
    `${props.agent}/${exitNo}`,
    (e) => e.type === 'campaign' && e.data.status === 'done'
  )
  const campaigns = useQuery<CampaignStatus[]>(
    () => api.campaigns({}),
    'campaigns',
    (e) => e.type === 'campaign' && e.data.status !== 'running'
  )
  const fitted = useMemo(() => (campaigns.data ?? []).filter((c) => c.profileId && c.status === 'done'), [campaigns.data])
  const planCheck = useMemo(
    () =>
      (campaigns.data ?? []).find((c) => c.kind === 'plans' && c.status === 'done' && c.plans?.points.length && (!props.agent || c.agentId === props.agent)),
    [campaigns.data, props.agent]
  )
  const [campaignId, setCampaignId] = useState<string>('')
  const chosen = campaignId || fitted[0]?.id || ''
  const cal = useQuery<CalibrationData>(chosen ? () => api.calibration({ campaign: chosen }) : null, chosen)

  return (
    <>
      <Card
        title="Per-layer latency of the model: predicted against measured"
        testId="layer-latencies"
        actions={
          model.data ? (
            <label>
              Exit
              <select value={exitNo ?? ''} onChange={(e) => setExit(Number(e.target.value))} data-testid="layer-exit">
                {model.data.exits.map((e) => (
                  <option key={e.exit} value={e.exit}>
                    exit {e.exit} ({e.layers.length} layers, {fmtPct(e.accuracy)})
                  </option>
                ))}
              </select>
            </label>
          ) : null
        }
      >
        {!props.agent ? (
          <Empty>Pair a device (Fleet) to compare its layers.</Empty>
        ) : (
          <Guard q={layers} what={`per-layer timings of ${props.agent} (the first time, the device times every layer: up to a minute)`}>
            {(d) => (
              <>
                <p className="muted">
                  Measured: each layer run alone as a single-layer ONNX slice (median), on {d.agentId} and on this machine. Predicted: the regressions of{' '}
                  {d.profile.fitted
                    ? `the device's current fitted profile ${d.profile.id}`
                    : 'the paper-2018 profile (the paper\u2019s Raspberry Pi 3 and desktop, not this hardware): run a layers campaign to fit this device'}
                  .
                </p>
                <LayerVsPlans profileId={d.profile.fitted ? d.profile.id : null} campaigns={campaigns.data ?? []} />
                <div className="grid2">
                  <LayerChart data={d} side="device" />
                  <LayerChart data={d} side="edge" />
                </div>
              </>
            )}
          </Guard>
        )}
      </Card>
      <Card title={`Predictions against real plans${planCheck ? ` on ${planCheck.agentId}` : ''}`} testId="plans-check">
        <Guard
          q={campaigns}
          what="campaigns"
          empty={() =>
            planCheck
              ? null
              : 'No plans campaign yet: start one (kind plans) on the Campaigns page to compare the predictions with every plan of the model, measured.'
          }
        >
          {() => <PlansCheck c={planCheck!} />}
        </Guard>
      </Card>
      <Card
        title="Regressions fitted by a campaign"
        testId="fits"
        actions={
          fitted.length ? (
            <label>
              Campaign
              <select value={chosen} onChange={(e) => setCampaignId(e.target.value)} data-testid="fit-campaign">
                {fitted.map((c) => (
                  <option key={c.id} value={c.id}>
                    {c.kind} on {c.agentId}, {new Date(c.startedAt).toLocaleString()}
                  </option>
                ))}
              </select>
            </label>
          ) : null
        }
      >
        <Guard
          q={campaigns}
          what="campaigns"
          empty={() => (fitted.length === 0 ? 'No completed campaign with a fitted profile yet: start one on the Campaigns page.' : null)}
        >
          {() => (
            <Guard q={cal} what="calibration data">
              {(c) => (
                <>
                  <FitLegend />
                  {c.points.length < c.pointsTotal ? (
                    <p className="muted small" data-testid="fit-points-shown">
                      Drawn: {c.points.length} of the campaign's {c.pointsTotal} points, evenly spaced in measurement order.
                    </p>
                  ) : null}
                  {(['device', 'edge'] as const).map((side) => (
                    <div key={side}>
                      <h3>{SIDE_TEXT[side]}</h3>
                      <div className="grid3">
                        {(c.campaign.fits ?? [])
                          .filter((f) => f.side === side)
                          .map((f) => (
                            <FitChart key={`${side}-${f.key}`} cal={c} side={side} fit={f} />
                          ))}
                      </div>
                    </div>
                  ))}
                </>
              )}
            </Guard>
          )}
        </Guard>
      </Card>
    </>
  )
}
