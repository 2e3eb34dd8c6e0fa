import { useEffect, useMemo, useRef, useState } from 'react'
import { Area, CartesianGrid, ComposedChart, Legend, Line, LineChart, ReferenceLine, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts'
import type { BandwidthPoint, InferencePoint, InferSummary } from '../../../shared/console-api'
import { Card, Empty, ErrorBox, Loading, RowForm, Stat, fmtKbps, fmtMs, fmtPct } from '../components/ui'
import { errorMessage } from '../../../shared/errors'
import { useApi, useConsoleEvents, useQuery } from '../hooks'
import { prepareTimeline } from '../timeline'

const BATCH = 25
const KEEP = 100_000

export function Live(props: { agent: string | null }): React.JSX.Element {
  const api = useApi()
  const agent = props.agent
  const [rows, setRows] = useState<InferencePoint[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [count, setCount] = useState(200)
  const [latencyMs, setLatencyMs] = useState(100)
  const [fixedKbps, setFixedKbps] = useState<string>('')
  const [running, setRunning] = useState<{ done: number; total: number } | null>(null)
  const [summary, setSummary] = useState<InferSummary | null>(null)
  const stop = useRef(false)
  const lastId = useRef(0)
  const fetching = useRef(false)

  const fetchNew = async () => {
    if (!agent || fetching.current) return
    fetching.current = true
    try {
      for (;;) {
        const more = await api.inferences({ agent, afterId: lastId.current, limit: 5000 })
        if (!more.length) break
        lastId.current = more[more.length - 1]!.id
        setRows((old) => {
          const next = [...(old ?? []), ...more]
          return next.length > KEEP ? next.slice(next.length - KEEP) : next
        })
        if (more.length < 5000) break
      }
      setError(null)
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      fetching.current = false
    }
  }

  useEffect(() => {
    setRows(null)
    setSummary(null)
    lastId.current = 0
    if (!agent) return
    let alive = true
    api.inferences({ agent, limit: 10_000 }).then(
      (r) => {
        if (!alive) return
        lastId.current = r.length ? r[r.length - 1]!.id : 0
        setRows(r)
      },
      (err: unknown) => alive && setError(errorMessage(err))
    )
    return () => {
      alive = false
    }
  }, [agent, api])

  useConsoleEvents((e) => {
    if (e.type === 'inferences' && e.data.id === agent) {
      setSummary(e.data.summary)
      void fetchNew()
    }
  })

  const bandwidth = useQuery<BandwidthPoint[]>(
    agent ? () => api.bandwidth({ agent, limit: 2000 }) : null,
    agent ?? '',
    (e) => e.type === 'bandwidth' && e.data.id === agent
  )

  const run = async () => {
    if (!agent) return
    stop.current = false
    setError(null)
    setRunning({ done: 0, total: count })
    try {
      for (let done = 0; done < count && !stop.current; ) {
        const n = Math.min(BATCH, count - done)
        const kbps = Number(fixedKbps)
        const r = await api.infer({ agent, count: n, latencyMs, ...(fixedKbps && kbps > 0 ? { uplinkKbps: kbps } : {}) })
        setSummary(r.summary)
        done += n
        setRunning({ done, total: count })
        await fetchNew()
      }
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setRunning(null)
    }
  }

  const tl = useMemo(() => prepareTimeline(rows ?? []), [rows])
  const bw = useMemo(() => {
    const list = bandwidth.data ?? []
    const t0 = list.length ? Date.parse(list[0]!.at) : 0
    return list.map((b) => ({ t: (Date.parse(b.at) - t0) / 1000, kbps: b.uplinkSampleKbps, smoothed: b.uplinkEstimateKbps, source: b.source }))
  }, [bandwidth.data])
  const last = rows?.length ? rows[rows.length - 1]! : null

  if (!agent) return <Empty>Pair a device (Fleet) to co-infer with it.</Empty>
  return (
    <>
      <Card title="Co-inference" testId="live-controls">
        <RowForm onSubmit={run}>
          <label>
            Inferences
            <input
              type="number"
              min={1}
              max={100000}
              value={count}
              onChange={(e) => setCount(Math.max(1, Number(e.target.value) || 1))}
              data-testid="live-count"
            />
          </label>
          <label>
            Latency requirement (ms)
            <input
              type="number"
              min={1}
              value={latencyMs}
              onChange={(e) => setLatencyMs(Math.max(1, Number(e.target.value) || 1))}
              data-testid="live-requirement"
            />
          </label>
          <label>
            Uplink (kbps)
            <input
              type="number"
              min={1}
              placeholder="measured estimate"
              value={fixedKbps}
              onChange={(e) => setFixedKbps(e.target.value)}
              data-testid="live-kbps"
            />
          </label>
          {running ? (
            <button type="button" className="secondary" onClick={() => (stop.current = true)}>
              Stop after this batch ({running.done}/{running.total})
            </button>
          ) : (
            <button type="submit" data-testid="live-run">
              Run
            </button>
          )}
        </RowForm>
        {error ? <ErrorBox error={error} /> : null}
        <div className="stats">
          <Stat label="inferences" value={tl.total} testId="live-total" />
          <Stat label="accuracy" value={fmtPct(tl.accuracy)} />
          <Stat label="requirement met" value={fmtPct(tl.metShare)} />
          <Stat label="end-to-end p50 / p95" value={`${fmtMs(tl.p50Ms)} / ${fmtMs(tl.p95Ms)} ms`} />
          <Stat label="current plan" value={last ? `exit ${last.exit}, ${last.deviceLayers} on device` : '—'} />
          <Stat label="plan changes" value={tl.planChanges.length} />
          <Stat
            label="prediction MAPE (last batch)"
            value={
              summary?.prediction.mapeCorrected != null
                ? `${fmtPct(summary.prediction.mapeCorrected)} (uncorrected ${fmtPct(summary.prediction.mapeUncorrected)})`
                : '—'
            }
          />
        </div>
      </Card>
      <Card title="Timeline: end-to-end latency and its breakdown" testId="live-timeline">
        {rows === null && !error ? (
          <Loading what="stored inferences" />
        ) : tl.total === 0 ? (
          <Empty>No co-inference with {agent} yet: press Run.</Empty>
        ) : (
          <div data-testid="live-chart" data-total={tl.total} data-points={tl.points.length}>
            <p className="muted small">
              {tl.total} inferences{tl.points.length < tl.total ? `, drawn as ${tl.points.length} points (LTTB downsampling)` : ''}. Stacked: device, transfer
              (end-to-end minus device and edge time), edge; dashed: the plan's prediction; red: the requirement; grey verticals: plan changes.
            </p>
            <ResponsiveContainer width="100%" height={340}>
              <ComposedChart data={tl.points} margin={{ top: 8, right: 16, bottom: 24, left: 8 }}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="n" type="number" domain={[1, Math.max(2, tl.total)]} label={{ value: 'inference #', position: 'insideBottom', offset: -12 }} />
                <YAxis label={{ value: 'latency (ms)', angle: -90, position: 'insideLeft' }} tickFormatter={(v: number) => fmtMs(v)} />
                <Tooltip formatter={(v) => `${fmtMs(Number(v))} ms`} labelFormatter={(v) => `inference ${String(v)}`} />
                <Legend verticalAlign="top" />
                <Area dataKey="deviceMs" name="device" stackId="b" stroke="#2f6fdf" fill="#2f6fdf" fillOpacity={0.35} isAnimationActive={false} />
                <Area dataKey="transferMs" name="transfer" stackId="b" stroke="#9b59b6" fill="#9b59b6" fillOpacity={0.35} isAnimationActive={false} />
                <Area dataKey="edgeMs" name="edge" stackId="b" stroke="#27ae60" fill="#27ae60" fillOpacity={0.35} isAnimationActive={false} />
                <Line dataKey="e2eMs" name="end-to-end (measured)" stroke="#111" dot={false} isAnimationActive={false} className="line-e2e" />
                <Line dataKey="predictedMs" name="predicted" stroke="#f0a030" strokeDasharray="5 3" dot={false} isAnimationActive={false} />
                <Line dataKey="latencyMs" name="requirement" type="stepAfter" stroke="#d94040" dot={false} isAnimationActive={false} />
                {tl.planChanges.map((c) => (
                  <ReferenceLine
                    key={c.n}
                    x={c.n}
                    stroke="#888"
                    strokeDasharray="2 2"
                    label={{ value: `e${c.exit}/${c.deviceLayers}`, position: 'top', fontSize: 9 }}
                  />
                ))}
              </ComposedChart>
            </ResponsiveContainer>
          </div>
        )}
      </Card>
      <Card title="Uplink bandwidth estimate" testId="live-bandwidth">
        {bandwidth.error ? <ErrorBox error={bandwidth.error} onRetry={bandwidth.reload} /> : null}
        {bw.length === 0 ? (
          <Empty>No uplink sample yet: the console probes idle devices and measures activation transfers.</Empty>
        ) : (
          <ResponsiveContainer width="100%" height={220}>
            <LineChart data={bw} margin={{ top: 8, right: 16, bottom: 24, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis
                dataKey="t"
                type="number"
                domain={['dataMin', 'dataMax']}
                tickFormatter={(v: number) => String(+v.toFixed(1))}
                label={{ value: 'time since first sample (s)', position: 'insideBottom', offset: -12 }}
              />
              <YAxis tickFormatter={(v: number) => fmtKbps(v)} width={80} label={{ value: 'kbps', angle: -90, position: 'insideLeft' }} />
              <Tooltip formatter={(v) => fmtKbps(Number(v))} labelFormatter={(v) => `${Number(v).toFixed(1)} s`} />
              <Legend verticalAlign="top" />
              <Line dataKey="smoothed" name="estimate (EWMA + change detection)" stroke="#2f6fdf" dot={false} isAnimationActive={false} />
              <Scatter dataKey="kbps" name="samples" fill="#9b59b6" isAnimationActive={false} />
            </LineChart>
          </ResponsiveContainer>
        )}
      </Card>
    </>
  )
}
