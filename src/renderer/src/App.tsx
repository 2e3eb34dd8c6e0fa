import { useEffect, useMemo, useState } from 'react'
import type { DeviceView } from '../../shared/contracts/console-api'
import { connect, type Connection, type ConnectionState } from './api'
import { ConnectionContext, useApi, useQuery } from './hooks'
import { Fleet } from './pages/Fleet'
import { Campaigns } from './pages/Campaigns'
import { Calibration } from './pages/Calibration'
import { Planner } from './pages/Planner'
import { Live } from './pages/Live'
import { Models } from './pages/Models'
import { Settings } from './pages/Settings'

export const PAGES = ['fleet', 'models', 'campaigns', 'calibration', 'planner', 'live', 'settings'] as const
export type PageId = (typeof PAGES)[number]
const TITLES: Record<PageId, string> = {
  fleet: 'Fleet',
  models: 'Models',
  campaigns: 'Campaigns',
  calibration: 'Calibration',
  planner: 'Planner',
  live: 'Live',
  settings: 'Settings'
}

function pageFromHash(): PageId {
  const h = window.location.hash.replace(/^#\/?/, '')
  return (PAGES as readonly string[]).includes(h) ? (h as PageId) : 'fleet'
}

export function App(): React.JSX.Element {
  const conn = useMemo<Connection>(() => connect(), [])
  const [state, setState] = useState<ConnectionState>(conn.state())
  useEffect(() => {
    // Child effects (the first API calls) run before this one: catch up with what they changed.
    setState(conn.state())
    return conn.onState(setState)
  }, [conn])
  return (
    <ConnectionContext.Provider value={conn}>
      <Shell connection={state} />
    </ConnectionContext.Provider>
  )
}

function Shell(props: { connection: ConnectionState }): React.JSX.Element {
  const api = useApi()
  const [page, setPage] = useState<PageId>(pageFromHash)
  useEffect(() => {
    const on = () => setPage(pageFromHash())
    window.addEventListener('hashchange', on)
    return () => window.removeEventListener('hashchange', on)
  }, [])
  const devices = useQuery<DeviceView[]>(
    () => api.devices({}),
    'devices',
    (e) => e.type === 'agent-state' || e.type === 'devices' || e.type === 'plan' || e.type === 'health'
  )
  const paired = (devices.data ?? []).filter((d) => d.paired)
  const [agent, setAgent] = useState<string | null>(null)
  useEffect(() => {
    if (agent && paired.some((d) => d.id === agent)) return
    const pick = paired.find((d) => d.state === 'online') ?? paired[0]
    setAgent(pick?.id ?? null)
  }, [agent, paired])
  const status = useQuery(() => api.status({}), 'status')
  const c = props.connection
  return (
    <div className="app">
      <nav className="nav">
        <div className="brand">
          Edgent Console
          <span className="brand-sub">{status.data ? `${status.data.model} · ${status.data.shell}` : ''}</span>
        </div>
        {PAGES.map((p) => (
          <a key={p} href={`#/${p}`} className={p === page ? 'nav-link active' : 'nav-link'} data-testid={`nav-${p}`}>
            {TITLES[p]}
          </a>
        ))}
        <div className="nav-spacer" />
        <label className="device-pick">
          Device
          <select value={agent ?? ''} onChange={(e) => setAgent(e.target.value || null)} data-testid="device-select" disabled={!paired.length}>
            {paired.length === 0 ? <option value="">no paired device</option> : null}
            {paired.map((d) => (
              <option key={d.id} value={d.id}>
                {d.id} ({d.state})
              </option>
            ))}
          </select>
        </label>
      </nav>
      {c.state !== 'open' ? (
        <div className={c.state === 'closed' && c.fatal ? 'banner banner-error' : 'banner'} role="status" data-testid="connection">
          {c.state === 'connecting' ? 'Connecting to the console…' : c.reason}
        </div>
      ) : null}
      <main className="page" data-testid={`page-${page}`}>
        <h1>{TITLES[page]}</h1>
        {page === 'fleet' ? <Fleet devices={devices} /> : null}
        {page === 'campaigns' ? <Campaigns devices={paired} agent={agent} onAgent={setAgent} /> : null}
        {page === 'calibration' ? <Calibration agent={agent} /> : null}
        {page === 'planner' ? <Planner agent={agent} /> : null}
        {page === 'live' ? <Live agent={agent} /> : null}
        {page === 'models' ? <Models /> : null}
        {page === 'settings' ? <Settings /> : null}
      </main>
    </div>
  )
}
