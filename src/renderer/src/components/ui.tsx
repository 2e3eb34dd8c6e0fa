import type { ReactNode } from 'react'

export function Card(props: { title: string; children: ReactNode; actions?: ReactNode; testId?: string }): React.JSX.Element {
  return (
    <section className="card" data-testid={props.testId}>
      <header className="card-head">
        <h2>{props.title}</h2>
        {props.actions ? <div className="card-actions">{props.actions}</div> : null}
      </header>
      <div className="card-body">{props.children}</div>
    </section>
  )
}

/** A one-row form whose submit (button or Enter) runs `onSubmit` instead of navigating. */
export function RowForm(props: { onSubmit: () => unknown; children: ReactNode }): React.JSX.Element {
  return (
    <form
      className="row"
      onSubmit={(e) => {
        e.preventDefault()
        void props.onSubmit()
      }}
    >
      {props.children}
    </form>
  )
}

export function Loading(props: { what: string }): React.JSX.Element {
  return (
    <div className="state state-loading" role="status">
      <span className="spinner" aria-hidden /> Loading {props.what}…
    </div>
  )
}

export function Empty(props: { children: ReactNode }): React.JSX.Element {
  return <div className="state state-empty">{props.children}</div>
}

export function ErrorBox(props: { error: string; onRetry?: () => void }): React.JSX.Element {
  return (
    <div className="state state-error" role="alert">
      <strong>Error:</strong> {props.error}
      {props.onRetry ? (
        <button type="button" className="link" onClick={props.onRetry}>
          retry
        </button>
      ) : null}
    </div>
  )
}

/**
 * A device's calibration that no longer matches it (LatencySource.stale: it announced another speed,
 * or its plans measured far from their predictions), said the same way on Fleet, Planner and Live.
 */
export function StaleCalibration(props: { agent: string; stale: string | null | undefined }): React.JSX.Element | null {
  if (!props.stale) return null
  return (
    <div className="state state-warn" role="status" data-testid={`stale-${props.agent}`}>
      <strong>Calibration out of date for {props.agent}:</strong> {props.stale}
    </div>
  )
}

/** Loading / error / empty / content, in that order. */
export function Guard<T>(props: {
  q: { data: T | undefined; error: string | null; loading: boolean; reload: () => void }
  what: string
  empty?: (d: T) => ReactNode | null
  children: (d: T) => ReactNode
}): React.JSX.Element {
  const { q } = props
  if (q.error && q.data === undefined) return <ErrorBox error={q.error} onRetry={q.reload} />
  if (q.data === undefined) return <Loading what={props.what} />
  const e = props.empty?.(q.data)
  return (
    <>
      {q.error ? <ErrorBox error={q.error} onRetry={q.reload} /> : null}
      {e ? <Empty>{e}</Empty> : props.children(q.data)}
    </>
  )
}

export function Stat(props: { label: string; value: ReactNode; testId?: string; title?: string }): React.JSX.Element {
  return (
    <div className="stat" data-testid={props.testId} title={props.title}>
      <div className="stat-label">{props.label}</div>
      <div className="stat-value">{props.value}</div>
    </div>
  )
}

export const fmtMs = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)
export const fmtPct = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : `${(v * 100).toFixed(digits)} %`
/** The unit a rate in kbps reads best in: Gbps from 1,000,000 kbps, Mbps from 10,000, else kbps. */
export const kbpsUnit = (v: number): { name: 'Gbps' | 'Mbps' | 'kbps'; per: number } =>
  v >= 1e6 ? { name: 'Gbps', per: 1e6 } : v >= 10_000 ? { name: 'Mbps', per: 1000 } : { name: 'kbps', per: 1 }

export const fmtKbps = (v: number | null | undefined): string => {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—'
  const u = kbpsUnit(v)
  const x = v / u.per
  return `${u.name === 'Gbps' ? +x.toFixed(2) : x.toFixed(u.name === 'Mbps' ? 1 : 0)} ${u.name}`
}

/**
 * A legend above a chart, in a band of its own: the chart's top margin is LEGEND_ROOM and the legend
 * sits at the top of it, so it never covers the plot's top line, its tick labels or its labels.
 */
export const LEGEND_ROOM = 34
export const TOP_LEGEND = { verticalAlign: 'top', align: 'center', wrapperStyle: { top: 4, lineHeight: '20px' } } as const
