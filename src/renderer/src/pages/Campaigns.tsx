import { useEffect, useState } from 'react'
import { parseNumber } from '../fields'
import { CAMPAIGN_KINDS, type CampaignKind, type CampaignStatus, type DeviceView } from '../../../shared/contracts/console-api'
import { Card, ErrorBox, Guard, RowForm, fmtPct } from '../components/ui'
import { errorMessage } from '../../../shared/errors'
import { download } from '../download'
import { useApi, useQuery } from '../hooks'
import { Annotation, TagsNoteFields, parseTags } from '../components/runs'

const KIND_TEXT: Record<string, string> = {
  layers: 'layers — synthetic single-layer models over a grid of every layer type, both sides (fits the regressions)',
  model: 'model — every layer of the served model, both sides',
  sweep: 'sweep — co-inference over bandwidths × latency requirements, predicted against measured (needs an emulated uplink)',
  plans:
    'plans — every exit × partition of the served model co-inferred at 100 Mbps, predicted (no online correction) against measured (needs an emulated uplink)'
}

export function ProgressBar(props: { value: number; label: string; testId?: string }): React.JSX.Element {
  const pct = Math.round(props.value * 100)
  return (
    <div className="progress" role="progressbar" aria-label={props.label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} data-testid={props.testId}>
      <div className="progress-fill" style={{ width: `${pct}%` }} />
      <span className="progress-text">{pct} %</span>
    </div>
  )
}

function fitSummary(c: CampaignStatus): string {
  if (c.sweep) return `${c.sweep.points.length} points · median error ${fmtPct(c.sweep.medianRelError)}`
  if (c.plans) {
    const e = c.plans.errors
    return `${c.plans.points.length} plans · within ±10 %: device ${fmtPct(e.device.within10)}, edge ${fmtPct(e.edge.within10)}, end to end ${fmtPct(e.e2e.within10)}${
      c.plans.retest ? ` (test–retest ${fmtPct(c.plans.retest.e2e.within10)})` : ''
    } · median error end to end ${fmtPct(e.e2e.median)}`
  }
  if (!c.fits?.length) return '—'
  // The held-out error, never the training one: a fit that has no held-out point is not counted as checked.
  const checked = c.fits.filter((f) => f.heldOutMape !== null)
  const fellBack = c.fits.filter((f) => f.fallback).length
  const med = checked.length ? checked.map((f) => f.heldOutMape!).sort((a, b) => a - b)[Math.floor(checked.length / 2)] : null
  return `${c.fits.length} fits${med !== null ? ` · median held-out MAPE ${fmtPct(med)}` : ' · none checked on held-out points'}${fellBack ? ` · ${fellBack} fell back` : ''}`
}

/** "4 min 05 s" */
export function elapsedText(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
}

/** Seconds since a start, redrawn every second. */
function Elapsed(props: { since: string }): React.JSX.Element {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [])
  return <span data-testid="campaign-elapsed">{elapsedText(now - Date.parse(props.since))}</span>
}

/** The device is the console's one current device (the selector in the navigation bar follows this one and back). */
export function Campaigns(props: { devices: DeviceView[]; agent: string | null; onAgent: (id: string | null) => void }): React.JSX.Element {
  const api = useApi()
  // The CLI's defaults (`edgent campaign run`: --kind layers --reps 5), so both start the same campaign.
  const [kind, setKind] = useState<CampaignKind>('layers')
  const [repsText, setRepsText] = useState('5')
  const [tagsText, setTagsText] = useState('')
  const [noteText, setNoteText] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [exportMsg, setExportMsg] = useState<string | null>(null)
  const chosen = props.agent ?? ''
  const q = useQuery<CampaignStatus[]>(
    () => api.campaigns({}),
    'campaigns',
    (e) => e.type === 'campaign'
  )

  const start = async () => {
    setError(null)
    const reps = parseNumber(repsText, {
      name: kind === 'sweep' ? 'inferences per point' : kind === 'plans' ? 'inferences per plan' : 'repetitions',
      integer: true,
      min: 1,
      max: 200
    })
    if (!reps.ok) {
      setError(reps.error)
      return
    }
    try {
      const tags = parseTags(tagsText)
      await api.campaignStart({
        agent: chosen,
        kind,
        reps: reps.value,
        ...(tags.length ? { tags } : {}),
        ...(noteText.trim() ? { note: noteText } : {})
      })
      q.reload()
    } catch (err) {
      setError(errorMessage(err))
    }
  }
  const doExport = async (format: 'json' | 'csv', campaign?: string) => {
    setError(null)
    setExportMsg(null)
    try {
      const f = await api.exportCalibration({ format, ...(campaign ? { campaign } : {}) })
      download(f)
      setExportMsg(`Saved ${f.fileName}: ${f.summary}`)
    } catch (err) {
      setError(errorMessage(err))
    }
  }
  const running = (q.data ?? []).filter((c) => c.status === 'running')
  const online = props.devices.filter((d) => d.state === 'online' || d.state === 'busy')

  return (
    <>
      <Card title="Start a campaign" testId="campaign-form">
        <RowForm onSubmit={start}>
          <label>
            Device
            <select value={chosen} onChange={(e) => props.onAgent(e.target.value || null)} data-testid="campaign-device">
              {props.devices.length === 0 ? <option value="">no paired device</option> : null}
              {props.devices.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.id} ({d.state})
                </option>
              ))}
            </select>
          </label>
          <label>
            Kind
            <select value={kind} onChange={(e) => setKind(e.target.value as CampaignKind)} data-testid="campaign-kind">
              {CAMPAIGN_KINDS.map((k) => (
                <option key={k} value={k}>
                  {KIND_TEXT[k] ?? k}
                </option>
              ))}
            </select>
          </label>
          <label>
            {kind === 'sweep' ? 'Inferences per point' : kind === 'plans' ? 'Inferences per plan' : 'Repetitions'}
            <input type="text" inputMode="numeric" value={repsText} onChange={(e) => setRepsText(e.target.value)} data-testid="campaign-reps" />
          </label>
          <TagsNoteFields tags={tagsText} note={noteText} onTags={setTagsText} onNote={setNoteText} what="campaign" testIdPrefix="campaign" />
          <button type="submit" disabled={!chosen || !online.some((d) => d.id === chosen)} data-testid="campaign-start">
            Start
          </button>
        </RowForm>
        {chosen && !online.some((d) => d.id === chosen) ? <p className="muted">{chosen} is not online: a campaign needs the device connected.</p> : null}
        {error ? <ErrorBox error={error} /> : null}
      </Card>

      {running.length ? (
        <Card title="Running" testId="campaign-running">
          {running.map((c) => (
            <div key={c.id} className="running">
              <div>
                <strong>{c.kind}</strong> on {c.agentId} · {c.measurements} measurements · running for <Elapsed since={c.startedAt} />
                {c.pass ? (
                  <span data-testid="campaign-pass">
                    {' '}
                    · pass {c.pass.current} of {c.pass.of}
                  </span>
                ) : null}
              </div>
              <ProgressBar value={c.progress} label={`campaign ${c.id}`} testId="campaign-progress" />
              <button type="button" className="secondary" onClick={() => void api.campaignCancel({ id: c.id }).then(q.reload)}>
                Cancel
              </button>
            </div>
          ))}
        </Card>
      ) : null}

      {(q.data ?? []).find((c) => c.sweep?.points.length) ? <SweepCard c={(q.data ?? []).find((c) => c.sweep?.points.length)!} /> : null}

      <Card
        title="History"
        testId="campaign-history"
        actions={
          <>
            <button type="button" className="secondary" onClick={() => void doExport('json')} data-testid="export-json">
              Export all (JSON)
            </button>
            <button type="button" className="secondary" onClick={() => void doExport('csv')} data-testid="export-csv">
              Export all (CSV)
            </button>
          </>
        }
      >
        {exportMsg ? (
          <p className="ok" data-testid="export-message">
            {exportMsg}
          </p>
        ) : null}
        <Guard
          q={q}
          what="campaigns"
          empty={(d) => (d.length === 0 ? 'No campaign yet. Start one above: its progress, elapsed time and (layers) pass show here while it runs.' : null)}
        >
          {(list) => (
            <table className="table" data-testid="campaign-table">
              <thead>
                <tr>
                  <th>Started</th>
                  <th>Kind</th>
                  <th>Device</th>
                  <th>Model</th>
                  <th>Status</th>
                  <th>Progress</th>
                  <th>Measurements</th>
                  <th>Result</th>
                  <th>Export</th>
                  <th>Tags and note</th>
                </tr>
              </thead>
              <tbody>
                {list.map((c) => (
                  <tr key={c.id} data-testid={`campaign-${c.id}`}>
                    <td>{new Date(c.startedAt).toLocaleString()}</td>
                    <td>{c.kind}</td>
                    <td>{c.agentId}</td>
                    <td title={c.kind === 'layers' ? 'a layers campaign times synthetic layers: its profile serves any model' : ''}>{c.model ?? '—'}</td>
                    <td>
                      <span className={`badge badge-${c.status}`} title={c.error ?? ''} data-testid="campaign-status">
                        {c.status}
                      </span>
                      {c.error ? <div className="muted small">{c.error}</div> : null}
                    </td>
                    <td>
                      <ProgressBar value={c.progress} label={`campaign ${c.id} progress`} />
                    </td>
                    <td>{c.measurements}</td>
                    <td>
                      {fitSummary(c)}
                      <CampaignDetail c={c} />
                      {c.warnings?.length ? (
                        <div className="warn small" data-testid="campaign-warnings">
                          {c.warnings.join(' · ')}
                        </div>
                      ) : null}
                    </td>
                    <td>
                      <button type="button" className="link" onClick={() => void doExport('json', c.id)}>
                        JSON
                      </button>{' '}
                      <button type="button" className="link" onClick={() => void doExport('csv', c.id)}>
                        CSV
                      </button>
                    </td>
                    <td>
                      <Annotation target="campaign" id={c.id} tags={c.tags ?? []} note={c.note ?? ''} onSaved={q.reload} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Guard>
      </Card>
    </>
  )
}

/** A campaign's detail, on request: its times, profile, every fit with its held-out error, the link stage. */
function CampaignDetail(props: { c: CampaignStatus }): React.JSX.Element {
  const { c } = props
  const ms = c.finishedAt ? Date.parse(c.finishedAt) - Date.parse(c.startedAt) : null
  return (
    <details className="small" data-testid="campaign-detail">
      <summary>details</summary>
      <div>
        id {c.id} · {c.kind} on {c.agentId} · model {c.model ?? 'not recorded'}
        {ms !== null ? ` · took ${elapsedText(ms)}` : ''} · {c.measurements} measurements
        {c.profileId ? ` · profile ${c.profileId}` : ''}
      </div>
      {c.fits?.length ? (
        <table className="table compact">
          <thead>
            <tr>
              <th>side</th>
              <th>layer type</th>
              <th>points</th>
              <th>held out</th>
              <th>held-out MAPE</th>
              <th>forest</th>
              <th>note</th>
            </tr>
          </thead>
          <tbody>
            {c.fits.map((f) => (
              <tr key={`${f.side}/${f.key}`}>
                <td>{f.side}</td>
                <td>{f.key}</td>
                <td>{f.n}</td>
                <td>{f.heldOutN}</td>
                <td>{fmtPct(f.heldOutMape)}</td>
                <td>{f.forestHeldOutMape != null ? fmtPct(f.forestHeldOutMape) : '—'}</td>
                <td className="muted">{f.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {c.link?.messaging ? (
        <div>
          link stage: messaging {c.link.messaging.fixedMs.toFixed(2)} ms + {(c.link.messaging.perByteMs * 1e6).toFixed(1)} ms/MB
          {c.link.messaging.form ? ` (${c.link.messaging.form})` : ''}
        </div>
      ) : null}
      {c.plans ? (
        <div>
          {c.plans.points.length} plans at {c.plans.uplinkKbps} kbps · within ±10 %: device {fmtPct(c.plans.errors.device.within10)}, edge{' '}
          {fmtPct(c.plans.errors.edge.within10)}, end to end {fmtPct(c.plans.errors.e2e.within10)} · error medians: device{' '}
          {fmtPct(c.plans.errors.device.median)}, edge {fmtPct(c.plans.errors.edge.median)}, end to end {fmtPct(c.plans.errors.e2e.median)}
        </div>
      ) : null}
      {c.sweep ? <div>{c.sweep.points.length} sweep points</div> : null}
    </details>
  )
}

/** The latest sweep: per point, the plan and its predicted against measured end-to-end latency. */
function SweepCard(props: { c: CampaignStatus }): React.JSX.Element {
  const w = props.c.sweep!
  return (
    <Card title={`Latest sweep on ${props.c.agentId}: predicted against measured`} testId="sweep-card">
      <p>
        Median error over {w.points.reduce((a, p) => a + p.completed, 0)} co-inferences: <strong data-testid="sweep-error">{fmtPct(w.medianRelError)}</strong> (
        {w.inferencesPerPoint} per point; the uplink is the device's emulated link set to each bandwidth; predictions include the online correction learned so
        far).
      </p>
      <table className="table compact">
        <thead>
          <tr>
            <th>uplink (kbps)</th>
            <th>requirement (ms)</th>
            <th>exit</th>
            <th>device layers</th>
            <th>predicted (ms)</th>
            <th>measured p50 (ms)</th>
            <th>error</th>
            <th>met</th>
            <th>accuracy</th>
          </tr>
        </thead>
        <tbody>
          {w.points.map((p) => (
            <tr key={`${p.uplinkKbps}/${p.latencyMs}`}>
              <td>{p.uplinkKbps}</td>
              <td>{p.latencyMs}</td>
              <td>{p.exit}</td>
              <td>
                {p.deviceLayers}/{p.layers}
              </td>
              <td>{p.predictedMs.toFixed(1)}</td>
              <td>{p.measuredMs.toFixed(1)}</td>
              <td>{fmtPct(p.relError)}</td>
              <td>{fmtPct(p.metShare, 0)}</td>
              <td>{fmtPct(p.accuracy)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  )
}
