import { useEffect, useMemo, useRef, useState } from 'react'
import { Area, CartesianGrid, ComposedChart, Legend, Line, LineChart, ReferenceLine, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts'
import type { BandwidthPoint, DeviceView, ExitPoliciesView, InferenceSource, InferencePoint, InferSummary } from '../../../shared/contracts/console-api'
import { parseAll, parseNumber } from '../fields'
import { Card, Empty, ErrorBox, Loading, RowForm, Stat, StaleCalibration, fmtKbps, fmtMs, fmtPct, kbpsUnit, LEGEND_ROOM, TOP_LEGEND } from '../components/ui'
import { errorMessage } from '../../../shared/errors'
import { useApi, useConsoleEvents, useQuery } from '../hooks'
import { prepareTimeline } from '../timeline'
import { download } from '../download'
import { PERCENTILE_RANGE } from '../../../shared/algorithms/tail'
import { RunsCard, TagsNoteFields, parseTags } from '../components/runs'

const BATCH = 25
const KEEP = 100_000

export function Live(props: { agent: string | null }): React.JSX.Element {
  const api = useApi()
  const agent = props.agent
  const [rows, setRows] = useState<InferencePoint[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  // The fields' text as typed: parsed, and refused when invalid, only on Run.
  const [countText, setCountText] = useState('200')
  const [latencyText, setLatencyText] = useState('100')
  const [fixedKbps, setFixedKbps] = useState<string>('')
  // Tail-aware planning: the requirement holds for this percentile of inferences (empty: the typical one).
  const [percentileText, setPercentileText] = useState<string>('')
  const [tagsText, setTagsText] = useState('')
  const [noteText, setNoteText] = useState('')
  /** The last run at a percentile: its inferences within the requirement, of all completed. */
  const [tailRun, setTailRun] = useState<{ percentile: number; met: number; completed: number } | null>(null)
  // Campaigns co-infer too (sweeps): the user's runs are shown unless asked otherwise.
  const [source, setSource] = useState<InferenceSource>('user')
  const [running, setRunning] = useState<{ done: number; total: number } | null>(null)
  const [summary, setSummary] = useState<InferSummary | null>(null)
  // Confidence exits (issue 31): whether this device's plans may use the model's policies, and its audits.
  const [policies, setPolicies] = useState<ExitPoliciesView | null>(null)
  useEffect(() => {
    // read again after every batch (its audits may have moved the thresholds)
    if (!agent || summary === undefined) return
    let alive = true
    api.exitPolicies({ agent }).then(
      (v) => alive && setPolicies(v),
      () => undefined
    )
    return () => {
      alive = false
    }
  }, [agent, api, summary])
  const togglePolicies = (enabled: boolean) => {
    if (!agent) return
    // shown at once; the console's answer (or its refusal) settles it
    setPolicies((p) => (p ? { ...p, enabled } : p))
    api.exitPolicies({ agent, enabled }).then(setPolicies, (err: unknown) => {
      setPolicies((p) => (p ? { ...p, enabled: !enabled } : p))
      setError(errorMessage(err))
    })
  }
  const stop = useRef(false)
  const lastId = useRef(0)
  const fetching = useRef(false)

  const fetchNew = async () => {
    if (!agent || fetching.current) return
    fetching.current = true
    try {
      for (;;) {
        const more = await api.inferences({ agent, afterId: lastId.current, limit: 5000, source })
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
    api.inferences({ agent, limit: 10_000, source }).then(
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
  }, [agent, api, source])

  useConsoleEvents((e) => {
    if (e.type === 'inferences' && e.data.id === agent) {
      setSummary(e.data.summary)
      void fetchNew()
    }
  })

  // The device's calibration (LatencySource.stale), refreshed when devices or their sources change.
  const devices = useQuery<DeviceView[]>(
    () => api.devices({}),
    'devices',
    (e) => e.type === 'devices' || (e.type === 'inferences' && e.data.id === agent)
  )

  const bandwidth = useQuery<BandwidthPoint[]>(
    agent ? () => api.bandwidth({ agent, limit: 2000 }) : null,
    agent ?? '',
    (e) => e.type === 'bandwidth' && e.data.id === agent
  )

  const run = async () => {
    if (!agent) return
    const p = parseAll({
      count: [countText, { name: 'inferences', integer: true, min: 1, max: 100_000 }],
      latencyMs: [latencyText, { name: 'latency requirement (ms)', above: 0, max: 3_600_000 }]
    })
    const kbpsParsed = fixedKbps.trim() === '' ? null : parseNumber(fixedKbps, { name: 'uplink (kbps)', above: 0, max: 1e7 })
    const pctParsed =
      percentileText.trim() === '' ? null : parseNumber(percentileText, { name: 'percentile', min: PERCENTILE_RANGE[0], max: PERCENTILE_RANGE[1] })
    const problems = [
      ...(p.ok ? [] : p.errors),
      ...(kbpsParsed && !kbpsParsed.ok ? [kbpsParsed.error] : []),
      ...(pctParsed && !pctParsed.ok ? [pctParsed.error] : [])
    ]
    if (!p.ok || problems.length) {
      setError(problems.join(' · '))
      return
    }
    const { count, latencyMs } = p.values
    const kbps = kbpsParsed?.ok ? kbpsParsed.value : null
    const percentile = pctParsed?.ok ? pctParsed.value : null
    if (source === 'campaign') setSource('user') // the run is the user's: show those
    stop.current = false
    setError(null)
    setRunning({ done: 0, total: count })
    setTailRun(percentile !== null ? { percentile, met: 0, completed: 0 } : null)
    const tags = parseTags(tagsText)
    try {
      // The batches make one run: the first starts it (with the tags and note), the rest continue it.
      let runId: string | null = null
      for (let done = 0; done < count && !stop.current; ) {
        const n = Math.min(BATCH, count - done)
        const r = await api.infer({
          agent,
          count: n,
          latencyMs,
          ...(kbps !== null ? { uplinkKbps: kbps } : {}),
          ...(percentile !== null ? { percentile } : {}),
          ...(runId ? { continues: runId } : { ...(tags.length ? { tags } : {}), ...(noteText.trim() ? { note: noteText } : {}) })
        })
        runId = r.summary.runId
        setSummary(r.summary)
        if (percentile !== null) {
          const met = r.rows.filter((x) => x.met).length
          setTailRun((t) => (t ? { ...t, met: t.met + met, completed: t.completed + r.rows.length } : t))
        }
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

  const [exported, setExported] = useState<string | null>(null)
  /** Every inference or uplink sample of this device, as a file (campaign runs included, marked by campaign_id). */
  const doExport = async (what: 'runs' | 'bandwidth', format: 'csv' | 'json') => {
    if (!agent) return
    setError(null)
    try {
      const f = await api.exportCalibration({ what, format, agent })
      download(f)
      setExported(`Saved ${f.fileName}: ${f.summary}`)
    } catch (err) {
      setError(errorMessage(err))
    }
  }

  // The figures are one model's: the device's current one unless all are asked for (runs of different
  // models pooled into one p50 would describe neither).
  const [allModels, setAllModels] = useState(false)
  const currentModel = devices.data?.find((d) => d.id === agent)?.model ?? null
  const shown = useMemo(
    () => (allModels || !currentModel ? (rows ?? []) : (rows ?? []).filter((r) => r.model === currentModel)),
    [rows, allModels, currentModel]
  )
  const hiddenOther = (rows?.length ?? 0) - shown.length
  const tl = useMemo(() => prepareTimeline(shown), [shown])
  const bw = useMemo(() => {
    const list = bandwidth.data ?? []
    const t0 = list.length ? Date.parse(list[0]!.at) : 0
    return list.map((b) => ({ t: (Date.parse(b.at) - t0) / 1000, kbps: b.uplinkSampleKbps, smoothed: b.uplinkEstimateKbps, source: b.source }))
  }, [bandwidth.data])
  // The axis's unit follows the data (a loopback link measures Gbit/s): ticks and title always agree.
  const bwUnit = useMemo(() => kbpsUnit(Math.max(0, ...bw.map((b) => Math.max(b.kbps, b.smoothed)))), [bw])
  const last = shown.length ? shown[shown.length - 1]! : null
  // Plan-change labels at least 1/14 of the axis apart (each ~50 px at 700 px): the rest are lines only.
  const labelled = useMemo(() => {
    const gap = Math.max(1, tl.total / 14)
    const keep = new Set<number>()
    let at = Number.NEGATIVE_INFINITY
    for (const c of tl.planChanges)
      if (c.n - at >= gap) {
        keep.add(c.n)
        at = c.n
      }
    return keep
  }, [tl])
  // Samples far apart (a campaign at 100 Mbps beside a run at 1 Mbps) are drawn on a log axis, so neither is squashed flat.
  const bwLog = useMemo(() => {
    const vals = bw.flatMap((b) => [b.kbps, b.smoothed]).filter((v) => v > 0)
    if (!vals.length) return null
    const lo = Math.min(...vals)
    const hi = Math.max(...vals)
    if (hi / lo <= 20) return null
    const ticks: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(10 ** e)
    return ticks
  }, [bw])

  if (!agent) return <Empty>Pair a device (Fleet) to co-infer with it.</Empty>
  return (
    <>
      <Card
        title="Co-inference"
        testId="live-controls"
        actions={(['runs', 'bandwidth'] as const).flatMap((what) =>
          (['csv', 'json'] as const).map((format) => (
            <button
              key={`${what}-${format}`}
              type="button"
              className="secondary"
              onClick={() => void doExport(what, format)}
              data-testid={`export-${what}-${format}`}
            >
              Export {what === 'runs' ? 'inferences' : 'bandwidth'} ({format.toUpperCase()})
            </button>
          ))
        )}
      >
        <RowForm onSubmit={run}>
          <label>
            Inferences
            <input type="text" inputMode="numeric" value={countText} onChange={(e) => setCountText(e.target.value)} data-testid="live-count" />
          </label>
          <label>
            Latency requirement (ms)
            <input type="text" inputMode="decimal" value={latencyText} onChange={(e) => setLatencyText(e.target.value)} data-testid="live-requirement" />
          </label>
          <label>
            Uplink (kbps)
            <input
              type="text"
              inputMode="decimal"
              placeholder="measured estimate"
              value={fixedKbps}
              onChange={(e) => setFixedKbps(e.target.value)}
              data-testid="live-kbps"
            />
          </label>
          <label>
            At percentile
            <input
              type="text"
              inputMode="decimal"
              placeholder="typical (50)"
              value={percentileText}
              onChange={(e) => setPercentileText(e.target.value)}
              data-testid="live-percentile"
              title="The requirement holds for this share of inferences: plans are chosen with the device's measured dispersion"
            />
          </label>
          <TagsNoteFields tags={tagsText} note={noteText} onTags={setTagsText} onNote={setNoteText} what="run" testIdPrefix="live" />
          <label
            title={
              policies?.unavailable ?? "Frames leave at the first exit confident enough (the model's measured policies); audited frames run to the final exit"
            }
          >
            Exits on confidence
            <input
              type="checkbox"
              checked={!!policies?.enabled}
              disabled={!policies}
              onChange={(e) => togglePolicies(e.target.checked)}
              data-testid="live-policies"
            />
          </label>
          <label>
            Model
            <select value={allModels ? 'all' : 'current'} onChange={(e) => setAllModels(e.target.value === 'all')} data-testid="live-models">
              <option value="current">{currentModel ?? 'the current one'}</option>
              <option value="all">all models</option>
            </select>
          </label>
          <label>
            Show
            <select value={source} onChange={(e) => setSource(e.target.value as InferenceSource)} data-testid="live-source">
              <option value="user">your runs</option>
              <option value="campaign">campaign runs</option>
              <option value="all">all</option>
            </select>
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
        <StaleCalibration agent={agent} stale={devices.data?.find((d) => d.id === agent)?.latencySource?.stale} />
        {hiddenOther > 0 ? (
          <p className="muted" data-testid="live-other-models">
            {hiddenOther} inference{hiddenOther === 1 ? '' : 's'} of other models not shown (Model: all models shows them).
          </p>
        ) : null}
        {error ? <ErrorBox error={error} /> : null}
        {exported ? (
          <p className="muted" data-testid="live-exported">
            {exported}
          </p>
        ) : null}
        <div className="stats">
          <Stat label="inferences" value={tl.total} testId="live-total" />
          <Stat label="accuracy" value={fmtPct(tl.accuracy)} />
          <Stat label="requirement met" value={fmtPct(tl.metShare)} />
          <Stat label="end-to-end p50 / p95" value={`${fmtMs(tl.p50Ms)} / ${fmtMs(tl.p95Ms)} ms`} />
          {tailRun ? (
            <Stat
              label={`within the requirement, this run (target ${tailRun.percentile} %)`}
              value={tailRun.completed ? `${fmtPct(tailRun.met / tailRun.completed)} of ${tailRun.completed}` : '—'}
              testId="live-percentile-met"
            />
          ) : null}
          {summary?.percentile != null && summary.tail ? (
            <Stat
              label={`predicted at p${summary.percentile} / typical`}
              value={`${summary.plan.predictedPercentileMs !== undefined ? fmtMs(summary.plan.predictedPercentileMs) : '—'} / ${fmtMs(summary.plan.predictedMs)} ms`}
              title={
                summary.tail.why ??
                `measured dispersion over ${summary.tail.samples} inferences of ${summary.tail.plans} plans: device ×${summary.tail.deviceFactor.toFixed(2)}, edge ×${summary.tail.edgeFactor.toFixed(2)}, link and messaging +${fmtMs(summary.tail.extraMs)} ms`
              }
              testId="live-percentile-predicted"
            />
          ) : null}
          <Stat
            label="current plan"
            value={
              summary?.plan.policy !== undefined
                ? `policy ${summary.plan.policy} (exits on confidence, final exit ${summary.plan.exit}), ${summary.plan.deviceLayers} on device`
                : last
                  ? `exit ${last.exit}, ${last.deviceLayers} on device`
                  : '—'
            }
            testId="live-plan"
          />
          {summary?.stagesMedianMs ? (
            <Stat
              label="edge wait / hand-offs / messaging (last batch, medians)"
              value={`${fmtMs(summary.stagesMedianMs.queueMs)} / ${fmtMs(summary.stagesMedianMs.handoffMs + summary.stagesMedianMs.deviceHandoffMs)} / ${fmtMs(summary.stagesMedianMs.wireMs)} ms`}
              title={`where the time went, medians: ${Object.entries(summary.stagesMedianMs)
                .map(([k, v]) => `${k.replace(/Ms$/, '')} ${fmtMs(v)}`)
                .join(', ')} (ms; uplink and downlink need one clock on both sides)`}
              testId="live-stages"
            />
          ) : null}
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
      {summary?.leftAt && summary.plan.mixture ? <WhereFramesLeft summary={summary} audits={policies} /> : null}
      <Card title="Timeline: end-to-end latency and its breakdown" testId="live-timeline">
        {rows === null && !error ? (
          <Loading what="stored inferences" />
        ) : tl.total === 0 ? (
          <Empty>
            {source === 'campaign'
              ? `No campaign has co-inferred with ${agent} (sweep campaigns do).`
              : `No co-inference with ${agent} yet${source === 'user' ? ' from your runs' : ''}: press Run.`}
          </Empty>
        ) : (
          <div data-testid="live-chart" data-total={tl.total} data-points={tl.points.length}>
            <p className="muted small">
              {tl.total} inferences{tl.points.length < tl.total ? `, drawn as ${tl.points.length} points (LTTB downsampling)` : ''}. Stacked: device, transfer
              (end-to-end minus device and edge time), edge; dashed: the plan's prediction; red: the requirement; grey verticals: plan changes.
            </p>
            <ResponsiveContainer width="100%" height={340}>
              <ComposedChart data={tl.points} margin={{ top: LEGEND_ROOM, right: 16, bottom: 24, left: 8 }}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="n" type="number" domain={[1, Math.max(2, tl.total)]} label={{ value: 'inference #', position: 'insideBottom', offset: -12 }} />
                <YAxis label={{ value: 'latency (ms)', angle: -90, position: 'insideLeft' }} tickFormatter={(v: number) => fmtMs(v)} />
                <Tooltip formatter={(v) => `${fmtMs(Number(v))} ms`} labelFormatter={(v) => `inference ${String(v)}`} />
                <Legend {...TOP_LEGEND} />
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
                    label={labelled.has(c.n) ? { value: `e${c.exit}/${c.deviceLayers}`, position: 'top', fontSize: 9 } : undefined}
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
            <LineChart data={bw} margin={{ top: LEGEND_ROOM, right: 16, bottom: 24, left: 8 }}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis
                dataKey="t"
                type="number"
                domain={['dataMin', 'dataMax']}
                tickFormatter={(v: number) => String(+v.toFixed(1))}
                label={{ value: 'time since first sample (s)', position: 'insideBottom', offset: -12 }}
              />
              <YAxis
                {...(bwLog ? { scale: 'log' as const, domain: [bwLog[0]!, bwLog[bwLog.length - 1]!], ticks: bwLog, allowDataOverflow: true } : {})}
                tickFormatter={(v: number) => (+(v / bwUnit.per).toPrecision(4)).toLocaleString('en', { maximumFractionDigits: 6 })}
                width={80}
                label={{ value: `uplink (${bwUnit.name}${bwLog ? ', log scale' : ''})`, angle: -90, position: 'insideLeft', style: { textAnchor: 'middle' } }}
              />
              <Tooltip formatter={(v) => fmtKbps(Number(v))} labelFormatter={(v) => `${Number(v).toFixed(1)} s`} />
              <Legend {...TOP_LEGEND} />
              <Line dataKey="smoothed" name="estimate (EWMA + change detection)" stroke="#2f6fdf" dot={false} isAnimationActive={false} />
              <Scatter dataKey="kbps" name="samples" fill="#9b59b6" isAnimationActive={false} />
            </LineChart>
          </ResponsiveContainer>
        )}
      </Card>
      <RunsCard agent={agent} />
    </>
  )
}

/** A policy batch: where its frames left (exit, side), predicted against measured, and each share's latency. */
function WhereFramesLeft({ summary, audits }: { summary: InferSummary; audits: ExitPoliciesView | null }): React.JSX.Element {
  const mixture = summary.plan.mixture ?? []
  const left = summary.leftAt ?? []
  const keys = [...new Set([...mixture, ...left].map((x) => `${x.exit}/${x.side}`))]
  return (
    <Card title="Where frames left (last batch): predicted mixture against measured" testId="live-left">
      <table className="table">
        <thead>
          <tr>
            <th>exit</th>
            <th>side</th>
            <th>share predicted / measured</th>
            <th>latency predicted / measured mean</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => {
            const p = mixture.find((x) => `${x.exit}/${x.side}` === k)
            const m = left.find((x) => `${x.exit}/${x.side}` === k)
            const [exit, side] = k.split('/')
            return (
              <tr key={k} data-testid="live-left-row">
                <td>{exit}</td>
                <td>{side}</td>
                <td>
                  {p ? fmtPct(p.share) : '—'} / {m ? fmtPct(m.share) : '—'}
                </td>
                <td>
                  {p ? fmtMs(p.ms) : '—'} / {m ? fmtMs(m.meanMs) : '—'} ms
                </td>
              </tr>
            )
          })}
        </tbody>
      </table>
      <p className="muted">
        The typical latency is the mixture's mean: predicted {fmtMs(summary.plan.predictedMs)} ms
        {summary.plan.predictedPercentileMs !== undefined ? `, p${summary.percentile} ${fmtMs(summary.plan.predictedPercentileMs)} ms` : ''}; audited frames run
        to the final exit.
      </p>
      {audits ? (
        <p className="muted" data-testid="live-audits">
          Audits: {fmtPct(audits.auditShare)} of frames, bound {fmtPct(audits.bound)} disagreement with the final exit
          {audits.disagreement !== null ? `, now ${fmtPct(audits.disagreement)} on ${audits.frames} audited frames` : ''}
          {audits.changes.length
            ? `; thresholds moved ${audits.changes.length} time${audits.changes.length === 1 ? '' : 's'}, last ${audits.changes
                .at(-1)!
                .from.map((t) => t ?? '–')
                .join('/')} → ${audits.changes
                .at(-1)!
                .to.map((t) => t ?? '–')
                .join('/')}`
            : ''}
          .
        </p>
      ) : null}
    </Card>
  )
}
