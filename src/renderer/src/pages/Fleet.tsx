import { useEffect, useMemo, useState } from 'react'
import { emulationText } from '../../../shared/text'
import type { DeviceView, Pairing, WorkerView } from '../../../shared/contracts/console-api'
import { Card, ErrorBox, Guard, RowForm, StaleCalibration, fmtKbps, fmtMs } from '../components/ui'
import { errorMessage } from '../../../shared/errors'
import { useApi, useQuery, type Query } from '../hooks'
import { AGENT_ID_PATTERN } from '../../../shared/contracts/topics'
import { throttling } from '../../../shared/contracts/health'

/** Temperature, frequency and governor, load, free memory, and throttling now (in red) or since boot. */
function HealthCell(props: { h: DeviceView['health'] }): React.JSX.Element {
  const h = props.h
  if (!h) return <span className="muted">no report</span>
  const { now, past } = throttling(h.throttled)
  return (
    <>
      {[
        h.temperatureC !== null ? `${h.temperatureC} °C` : null,
        h.cpuCurMHz !== null ? `${h.cpuCurMHz}${h.cpuMaxMHz ? `/${h.cpuMaxMHz}` : ''} MHz${h.governor ? ` ${h.governor}` : ''}` : null,
        `load ${h.load[0]!.toFixed(2)}`,
        `${((h.availableMemoryBytes ?? h.freeMemoryBytes) / 2 ** 30).toFixed(1)} GiB free`
      ]
        .filter(Boolean)
        .join(' · ')}
      {now.length ? (
        <div className="bad" data-testid="throttled-now">
          throttled: {now.join(', ')}
        </div>
      ) : past.length ? (
        <div className="warn">since boot: {past.join(', ')}</div>
      ) : null}
    </>
  )
}

/** The edge's worker pool as the fleet loads it (edge-load.ts), refreshed every 2 s while shown. */
function EdgeCard(): React.JSX.Element {
  const api = useApi()
  const q = useQuery(
    () => api.load({}),
    'load',
    (e) => e.type === 'inferences' || e.type === 'plan'
  )
  useEffect(() => {
    const t = setInterval(() => q.reload(), 2000)
    return () => clearInterval(t)
  }, [q.reload])
  return (
    <Card title="Edge" testId="edge-card">
      <Guard q={q} what="the edge's load">
        {(v) => (
          <p data-testid="edge-load">
            {v.workers} ORT worker{v.workers === 1 ? '' : 's'} · over the last {v.windowMs / 1000} s: {v.runsPerSecond.toFixed(0)} runs/s, busy{' '}
            {(100 * Math.min(1, v.utilisation)).toFixed(0)} %, wait for a worker {fmtMs(v.meanWaitMs)} ms mean, {fmtMs(v.p95WaitMs)} ms p95 · {v.queued} queued
            now ·{' '}
            {v.loadAware ? <span>plans take this load into account (load-aware)</span> : <span className="warn">plans ignore this load (load-blind)</span>}
          </p>
        )}
      </Guard>
    </Card>
  )
}

/** The edge workers (issue 34) and the console's own pool: state, load, speed, answers; refreshed every 2 s while shown. */
function WorkersCard(): React.JSX.Element {
  const api = useApi()
  const q = useQuery(
    () => api.workers({}),
    'workers',
    (e) => e.type === 'devices'
  )
  useEffect(() => {
    const t = setInterval(() => q.reload(), 2000)
    return () => clearInterval(t)
  }, [q.reload])
  const cell = (w: WorkerView) => [
    w.pool === null ? '—' : String(w.pool),
    String(w.inFlight),
    w.serviceMs === null ? '—' : `${fmtMs(w.serviceMs)} ms`,
    w.tripMs === null ? '—' : `${fmtMs(w.tripMs)} ms`,
    String(w.answered),
    String(w.refused),
    String(w.deaths)
  ]
  return (
    <Card title="Edge workers" testId="workers-card">
      <Guard q={q} what="the edge workers">
        {(list) =>
          list.length <= 1 ? (
            <p className="muted">The console's own pool serves the edge. Pair more machines with `edgent workers pair &lt;id&gt;`.</p>
          ) : (
            <table className="table" data-testid="workers-table">
              <thead>
                <tr>
                  <th>worker</th>
                  <th>state</th>
                  <th>threads</th>
                  <th>in flight</th>
                  <th>service</th>
                  <th>round trip</th>
                  <th>answered</th>
                  <th>refused</th>
                  <th>deaths</th>
                </tr>
              </thead>
              <tbody>
                {list.map((w) => (
                  <tr key={w.id} data-testid={`worker-${w.id}`}>
                    <td>{w.id === 'console' ? "the console's own pool" : w.id}</td>
                    <td className={w.state === 'dead' ? 'bad' : w.state === 'unknown' ? 'muted' : ''}>{w.state}</td>
                    {cell(w).map((c, i) => (
                      // biome-ignore lint/suspicious/noArrayIndexKey: fixed columns
                      <td key={i}>{c}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Guard>
    </Card>
  )
}

/** Copies a text to the clipboard, saying whether it worked (else: select it and press Ctrl+C). */
function CopyButton(props: { text: string; testId: string }): React.JSX.Element {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle')
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text)
      setState('copied')
    } catch {
      setState('failed')
    }
  }
  return (
    <button type="button" className="secondary" onClick={() => void copy()} data-testid={props.testId} title="copy the command">
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed: select it and press Ctrl+C' : 'Copy'}
    </button>
  )
}

export function Fleet(props: { devices: Query<DeviceView[]> }): React.JSX.Element {
  const api = useApi()
  const [id, setId] = useState('')
  const [pairing, setPairing] = useState<Pairing | null>(null)
  // The credentials as a download (an object URL, released when the pairing changes).
  const credentialsUrl = useMemo(() => (pairing ? URL.createObjectURL(new Blob([pairing.credentials], { type: 'application/json' })) : null), [pairing])
  useEffect(
    () => () => {
      if (credentialsUrl) URL.revokeObjectURL(credentialsUrl)
    },
    [credentialsUrl]
  )
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [confirm, setConfirm] = useState<string | null>(null)
  // Unpaired devices stay in the store (their runs and campaigns refer to them): listed on request.
  const [showUnpaired, setShowUnpaired] = useState(false)

  // An id that is paired already is re-paired only when the user confirms (its old token dies).
  const [repair, setRepair] = useState<string | null>(null)
  const pair = async (force = false) => {
    setBusy(true)
    setError(null)
    setRepair(null)
    try {
      setPairing(await api.pair({ id: id.trim(), ...(force ? { force: true } : {}) }))
      setId('')
      props.devices.reload()
    } catch (err) {
      const message = errorMessage(err)
      if (/is already paired/.test(message)) setRepair(id.trim())
      setError(message)
    } finally {
      setBusy(false)
    }
  }
  const unpair = async (dev: string) => {
    setError(null)
    try {
      await api.unpair({ id: dev })
      setConfirm(null)
      props.devices.reload()
    } catch (err) {
      setError(errorMessage(err))
    }
  }

  return (
    <>
      <Card title="Pair a Raspberry Pi" testId="pair-card">
        <RowForm onSubmit={() => pair()}>
          <label>
            Device id
            <input
              value={id}
              onChange={(e) => setId(e.target.value)}
              placeholder="pi-kitchen"
              pattern={AGENT_ID_PATTERN}
              title="lowercase letters, digits and dashes"
              data-testid="pair-id"
              required
            />
          </label>
          <button type="submit" disabled={busy || !id.trim()} data-testid="pair-submit">
            {busy ? 'Pairing…' : 'Pair'}
          </button>
        </RowForm>
        {error ? <ErrorBox error={error} /> : null}
        {repair ? (
          <p>
            <button type="button" className="danger" onClick={() => void pair(true)} disabled={busy} data-testid="pair-force">
              Pair {repair} again: new token, the old one stops working
            </button>
          </p>
        ) : null}
        {pairing ? (
          <div className="pairing">
            <p>
              {pairing.replaced
                ? `Re-paired ${pairing.id}: its old token no longer works${pairing.disconnected ? ' and its agent was disconnected' : ''}. `
                : ''}
              Paired <strong>{pairing.id}</strong>. Save its credentials file as <code>{pairing.id}.credentials.json</code> on the Pi (<code>chmod 600</code>:
              it holds the token, shown only now — re-pairing issues a new one), then run the command beside it (64-bit Raspberry Pi OS, Node 22 or 24; see
              pi-agent/README.md).{' '}
              {pairing.broker.startsWith('mqtts://')
                ? 'The agent connects over TLS and pins this console’s certificate authority.'
                : 'The agent connects over plain MQTT: the token and activations cross the network unencrypted.'}
            </p>
            <p>
              <a href={credentialsUrl ?? '#'} download={`${pairing.id}.credentials.json`} data-testid="pair-download">
                Download {pairing.id}.credentials.json
              </a>
            </p>
            <div className="row">
              <pre data-testid="pair-command">{pairing.command}</pre>
              <CopyButton text={pairing.command} testId="pair-copy" />
            </div>
            <details>
              <summary>Show the file</summary>
              <pre data-testid="pair-credentials">{pairing.credentials}</pre>
            </details>
          </div>
        ) : null}
      </Card>
      <EdgeCard />
      <WorkersCard />
      <Card
        title="Devices"
        testId="devices-card"
        actions={
          (props.devices.data ?? []).some((d) => !d.paired) ? (
            <button type="button" className="secondary" onClick={() => setShowUnpaired((v) => !v)} data-testid="show-unpaired">
              {showUnpaired ? 'Hide' : 'Show'} {(props.devices.data ?? []).filter((d) => !d.paired).length} unpaired
            </button>
          ) : null
        }
      >
        <Guard q={props.devices} what="devices" empty={(d) => (d.length === 0 ? 'No device has been paired yet. Pair one above.' : null)}>
          {(all) => {
            const list = showUnpaired ? all : all.filter((d) => d.paired)
            return (
              <table className="table" data-testid="devices-table">
                <thead>
                  <tr>
                    <th>Device</th>
                    <th>Status</th>
                    <th>Capabilities</th>
                    <th>Emulation</th>
                    <th>Current plan</th>
                    <th>Uplink estimate</th>
                    <th title="this device's edge runs over the last 2 s: rate, mean wait for a worker, share of the pool">Edge share</th>
                    <th>Health</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {list.map((d) => (
                    <tr key={d.id} data-testid={`device-${d.id}`}>
                      <td>
                        <strong>{d.id}</strong>
                      </td>
                      <td>
                        <span className={`badge badge-${d.paired ? d.state : 'revoked'}`} data-testid={`state-${d.id}`}>
                          {d.paired ? d.state : 'unpaired'}
                        </span>
                      </td>
                      <td>
                        {d.hello ? (
                          <>
                            {d.hello.arch} · {d.hello.cpus} CPU · {(d.hello.memoryBytes / 2 ** 30).toFixed(1)} GiB
                            <div className="muted">
                              node {d.hello.versions.node} · onnxruntime-node {d.hello.versions.onnxruntime}
                            </div>
                          </>
                        ) : (
                          <span className="muted">not seen yet</span>
                        )}
                      </td>
                      <td className="muted">{d.hello ? emulationText(d.hello.emulation as Record<string, unknown> | undefined) : '—'}</td>
                      <td>
                        {d.plan ? (
                          `exit ${d.plan.exit}, ${d.plan.deviceLayers}/${d.plan.layers} layers on device (${fmtMs(d.plan.predictedMs)} ms predicted)`
                        ) : (
                          <span className="muted">none</span>
                        )}
                        <StaleCalibration agent={d.id} stale={d.latencySource?.stale} />
                      </td>
                      <td>
                        {d.state === 'online' || d.state === 'busy' ? (
                          fmtKbps(d.uplinkEstimateKbps)
                        ) : d.uplinkEstimateKbps !== null ? (
                          <span className="muted" title="measured while it was online; not current">
                            {fmtKbps(d.uplinkEstimateKbps)} (when last online)
                          </span>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td data-testid={`edge-${d.id}`}>
                        {d.edge ? (
                          `${d.edge.runsPerSecond.toFixed(0)} runs/s · wait ${fmtMs(d.edge.meanWaitMs)} ms · ${(100 * d.edge.utilisation).toFixed(0)} % of the pool`
                        ) : (
                          <span className="muted">idle</span>
                        )}
                      </td>
                      <td data-testid={`health-${d.id}`}>
                        {d.state === 'online' || d.state === 'busy' || !d.health ? (
                          <HealthCell h={d.health} />
                        ) : (
                          <div className="muted" title="its last report, from when it was online; not current">
                            last report: <HealthCell h={d.health} />
                          </div>
                        )}
                      </td>
                      <td>
                        {!d.paired ? null : confirm === d.id ? (
                          <>
                            <button type="button" className="danger" onClick={() => void unpair(d.id)} data-testid={`unpair-confirm-${d.id}`}>
                              Confirm unpair
                            </button>
                            <button type="button" className="link" onClick={() => setConfirm(null)}>
                              cancel
                            </button>
                          </>
                        ) : (
                          <button type="button" className="secondary" onClick={() => setConfirm(d.id)} data-testid={`unpair-${d.id}`}>
                            Unpair
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          }}
        </Guard>
      </Card>
    </>
  )
}
