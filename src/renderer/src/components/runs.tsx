/**
 * Runs and campaigns as a researcher keeps them (issue 35 item 10): tags and a note on each, edited in
 * place, and two runs compared side by side — every measure, the latency quantiles, and the p50/p95
 * difference beside the runs' own noise (a bootstrap interval computed by the console).
 */
import { useState } from 'react'
import type { ComparisonRow, RunComparison, RunView } from '../../../shared/contracts/console-api'
import { errorMessage } from '../../../shared/errors'
import { comparisonCell, comparisonDelta, type ComparisonFormat } from '../../../shared/algorithms/compare'
import { useApi, useQuery } from '../hooks'
import { Card, ErrorBox, Guard, fmtMs, fmtPct } from './ui'

/** "wifi, fan-off  battery" → ["wifi", "fan-off", "battery"] (the console checks each tag). */
export const parseTags = (text: string): string[] => text.split(/[\s,]+/).filter(Boolean)

/** The Tags and Note fields of a form that starts a run or a campaign (`testIdPrefix`-tags, -note). */
export function TagsNoteFields(props: {
  tags: string
  note: string
  onTags: (v: string) => void
  onNote: (v: string) => void
  what: 'run' | 'campaign'
  testIdPrefix: string
}): React.JSX.Element {
  return (
    <>
      <label>
        Tags
        <input
          type="text"
          placeholder={props.what === 'run' ? 'e.g. baseline wifi' : 'e.g. baseline fan-off'}
          value={props.tags}
          onChange={(e) => props.onTags(e.target.value)}
          data-testid={`${props.testIdPrefix}-tags`}
        />
      </label>
      <label>
        Note
        <input
          type="text"
          placeholder={`kept with the ${props.what}`}
          value={props.note}
          onChange={(e) => props.onNote(e.target.value)}
          data-testid={`${props.testIdPrefix}-note`}
        />
      </label>
    </>
  )
}

/** A run's or campaign's tags and note, with an Edit button that edits both in place. */
export function Annotation(props: { target: 'run' | 'campaign'; id: string; tags: string[]; note: string; onSaved: () => void }): React.JSX.Element {
  const api = useApi()
  const [editing, setEditing] = useState(false)
  const [tagsText, setTagsText] = useState('')
  const [noteText, setNoteText] = useState('')
  const [error, setError] = useState<string | null>(null)
  if (!editing) {
    return (
      <div className="annotation" data-testid={`annotation-${props.id}`}>
        {props.tags.map((t) => (
          <span key={t} className="tag">
            {t}
          </span>
        ))}
        {props.note ? <span className="note">{props.note}</span> : null}
        <button
          type="button"
          className="link"
          onClick={() => {
            setTagsText(props.tags.join(' '))
            setNoteText(props.note)
            setError(null)
            setEditing(true)
          }}
          data-testid="annotation-edit"
        >
          {props.tags.length || props.note ? 'edit' : 'add tags or a note'}
        </button>
      </div>
    )
  }
  const save = async () => {
    try {
      await api.annotate({ target: props.target, id: props.id, tags: parseTags(tagsText), note: noteText })
      setEditing(false)
      props.onSaved()
    } catch (err) {
      setError(errorMessage(err))
    }
  }
  return (
    <div className="annotation editing">
      <label>
        Tags
        <input type="text" value={tagsText} placeholder="baseline wifi-5GHz" onChange={(e) => setTagsText(e.target.value)} data-testid="annotation-tags" />
      </label>
      <label>
        Note
        <textarea rows={2} value={noteText} onChange={(e) => setNoteText(e.target.value)} data-testid="annotation-note" />
      </label>
      <button type="button" onClick={() => void save()} data-testid="annotation-save">
        Save
      </button>
      <button type="button" className="secondary" onClick={() => setEditing(false)}>
        Cancel
      </button>
      {error ? <ErrorBox error={error} /> : null}
    </div>
  )
}

const FORMAT: ComparisonFormat = { ms: fmtMs, pct: fmtPct }
const cell = (v: ComparisonRow['a'], unit: string): string => comparisonCell(v, unit, FORMAT)
const deltaText = (r: ComparisonRow): string => comparisonDelta(r, FORMAT)

function Comparison(props: { c: RunComparison }): React.JSX.Element {
  const { c } = props
  const head = (r: RunView, name: string) => (
    <div>
      <strong>{name}</strong> {new Date(r.startedAt).toLocaleString()} · {r.model ?? 'model not recorded'} · {r.agentId}
      {r.tags.length ? ` · ${r.tags.join(' ')}` : ''}
      {r.note ? ` · “${r.note}”` : ''}
    </div>
  )
  return (
    <div data-testid="run-comparison">
      {head(c.runs[0], 'A')}
      {head(c.runs[1], 'B')}
      <p className={c.differs.length ? 'warn' : 'muted'} data-testid="comparison-differs">
        {c.differs.length ? `Not alike: ${c.differs.join('; ')}` : 'Alike: same device, model, requirement, uplink and first plan.'}
      </p>
      <div className="split">
        <table className="table compact">
          <thead>
            <tr>
              <th>measure</th>
              <th>A</th>
              <th>B</th>
              <th>B − A</th>
            </tr>
          </thead>
          <tbody>
            {c.rows.map((r) => (
              <tr key={r.measure}>
                <td>{r.measure + (r.unit === 'ms' || r.unit === 'kbps' ? ` (${r.unit})` : '')}</td>
                <td className={r.better === 'a' ? 'better' : ''}>{cell(r.a, r.unit)}</td>
                <td className={r.better === 'b' ? 'better' : ''}>{cell(r.b, r.unit)}</td>
                <td>{deltaText(r)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table className="table compact" data-testid="comparison-quantiles">
          <thead>
            <tr>
              <th>end to end</th>
              <th>A (ms)</th>
              <th>B (ms)</th>
            </tr>
          </thead>
          <tbody>
            {c.quantiles.map((q) => (
              <tr key={q.q}>
                <td>p{Math.round(q.q * 100)}</td>
                <td>{fmtMs(q.a)}</td>
                <td>{fmtMs(q.b)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {c.differences.map((d) => (
        <p key={d.q} className={d.clear ? '' : 'muted'} data-testid="comparison-noise">
          B − A at p{Math.round(d.q * 100)}: {d.deltaMs > 0 ? '+' : ''}
          {fmtMs(d.deltaMs)} ms, 95 % interval [{fmtMs(d.lowMs)}, {fmtMs(d.highMs)}] ms —{' '}
          {d.clear ? 'a difference beyond the runs’ own noise' : 'within the runs’ own noise'}
        </p>
      ))}
    </div>
  )
}

/** A device's runs (newest first) with their tags and notes; tick two to compare them. */
export function RunsCard(props: { agent: string }): React.JSX.Element {
  const api = useApi()
  const q = useQuery<RunView[]>(
    () => api.runs({ agent: props.agent, source: 'user', limit: 50 }),
    `runs-${props.agent}`,
    (e) => e.type === 'inferences'
  )
  const [picked, setPicked] = useState<string[]>([])
  const [comparison, setComparison] = useState<RunComparison | null>(null)
  const [error, setError] = useState<string | null>(null)
  const toggle = (id: string) => setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : [...p.slice(-1), id]))
  const compare = async () => {
    setError(null)
    try {
      setComparison(await api.runCompare({ a: picked[0]!, b: picked[1]! }))
    } catch (err) {
      setError(errorMessage(err))
    }
  }
  return (
    <Card
      title="Runs"
      testId="live-runs"
      actions={
        <button type="button" disabled={picked.length !== 2} onClick={() => void compare()} data-testid="runs-compare">
          Compare the two ticked
        </button>
      }
    >
      {error ? <ErrorBox error={error} /> : null}
      <Guard q={q} what="runs" empty={(d) => (d.length === 0 ? 'No run yet: Run above, and each run is listed here to tag, annotate and compare.' : null)}>
        {(list) => (
          <div className="scroll-x">
            <table className="table compact" data-testid="runs-table">
              <thead>
                <tr>
                  <th />
                  <th>Started</th>
                  <th>Model</th>
                  <th>Inferences</th>
                  <th>Requirement</th>
                  <th>p50 / p95 (ms)</th>
                  <th>Met</th>
                  <th>Accuracy</th>
                  <th>Tags and note</th>
                </tr>
              </thead>
              <tbody>
                {list.map((r) => (
                  <tr key={r.id} data-testid={`run-${r.id}`}>
                    <td>
                      <input type="checkbox" checked={picked.includes(r.id)} onChange={() => toggle(r.id)} aria-label={`compare run ${r.id}`} />
                    </td>
                    <td>{new Date(r.startedAt).toLocaleString()}</td>
                    <td>{r.model ?? '—'}</td>
                    <td>{r.summary ? `${r.summary.completed}/${r.summary.count}` : r.status}</td>
                    <td>{r.summary ? `${r.summary.latencyMs} ms${r.summary.percentile !== null ? ` at p${r.summary.percentile}` : ''}` : '—'}</td>
                    <td>{r.summary ? `${fmtMs(r.summary.p50Ms)} / ${fmtMs(r.summary.p95Ms)}` : '—'}</td>
                    <td>{r.summary ? fmtPct(r.summary.metShare) : '—'}</td>
                    <td>{r.summary ? fmtPct(r.summary.accuracy) : '—'}</td>
                    <td>
                      <Annotation target="run" id={r.id} tags={r.tags} note={r.note} onSaved={q.reload} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Guard>
      {comparison ? <Comparison c={comparison} /> : null}
    </Card>
  )
}
