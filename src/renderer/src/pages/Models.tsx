import { useCallback, useEffect, useState } from 'react'
import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { DeviceView, LibraryModelView, ModelCutsView, ModelJobView, TransferView } from '../../../shared/contracts/console-api'
import { errorMessage } from '../../../shared/errors'
import { parsePreprocessSpec } from '../../../shared/algorithms/preprocess'
import { Card, ErrorBox, Guard, LEGEND_ROOM, RowForm, TOP_LEGEND, fmtPct } from '../components/ui'
import { useApi, useConsoleEvents, useQuery } from '../hooks'
import { ProgressBar } from './Campaigns'

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
        <ComposedChart data={rows} margin={{ top: LEGEND_ROOM, right: 24, bottom: 24, left: 16 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="cut" label={{ value: 'device layers (cut point)', position: 'insideBottom', offset: -12 }} />
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
          <Legend {...TOP_LEGEND} />
          <Bar yAxisId="bytes" dataKey="ratio" name="activation bytes / input bytes" fill="#2f6fdf" isAnimationActive={false} />
          <Line yAxisId="macs" dataKey="device" name="compute on the device (% of MACs)" stroke="#f0a030" dot={false} isAnimationActive={false} />
        </ComposedChart>
      </ResponsiveContainer>
    </div>
  )
}

const EVERY = '(every device without its own)'

/**
 * Import an ONNX classifier through the console API: the file (and an optional labelled set) is
 * uploaded to the console (capped), then imported as `edgent model import` would.
 */
function Import(props: { onImported: (id: string) => void }): React.JSX.Element {
  const api = useApi()
  const [file, setFile] = useState<File | null>(null)
  const [images, setImages] = useState<File | null>(null)
  const [labels, setLabels] = useState<File | null>(null)
  const [id, setId] = useState('')
  const [accuracy, setAccuracy] = useState('')
  const [shape, setShape] = useState('')
  const [prep, setPrep] = useState('')
  const [imageDir, setImageDir] = useState('')
  const [status, setStatus] = useState<{ busy: boolean; message: string | null; error: string | null }>({ busy: false, message: null, error: null })
  const submit = async () => {
    try {
      if (!file) throw new Error('choose an .onnx file')
      if (!!images !== !!labels) throw new Error('a labelled set needs both its images and its labels (idx files)')
      const acc = accuracy.trim() ? accuracy.split(',').map((v) => Number(v.trim())) : undefined
      if (acc?.some((v) => !Number.isFinite(v) || v < 0 || v > 1)) throw new Error('accuracies are numbers in [0, 1] separated by commas')
      if (!acc && !images && !imageDir.trim())
        throw new Error("each exit needs an accuracy: give a labelled set to measure it, or supply the exits' accuracies")
      const inputShape = shape.trim() ? shape.split(/[x×,]/).map((v) => Number(v.trim())) : undefined
      if (inputShape?.some((d) => !Number.isInteger(d) || d <= 0)) throw new Error('the input shape is positive integers separated by x, e.g. 1x3x224x224')
      const preprocess = prep.trim() ? parsePreprocessSpec(prep) : undefined
      // Sizes checked before anything is sent (a 200 MB file read whole into the page once crashed the tab).
      const cap = (await api.status({})).maxUploadBytes
      for (const f of [file, images, labels])
        if (f && f.size > cap)
          throw new Error(`${f.name} is ${(f.size / 2 ** 20).toFixed(0)} MiB, over the console's ${(cap / 2 ** 20).toFixed(0)} MiB upload cap`)
      setStatus({ busy: true, message: `uploading ${file.name}…`, error: null })
      const up = await api.upload(file, file.name)
      const set = images && labels ? [await api.upload(images, images.name), await api.upload(labels, labels.name)] : null
      setStatus({ busy: true, message: `importing ${file.name} (${up.bytes.toLocaleString()} bytes)…`, error: null })
      const r = await api.modelImport({
        upload: up.upload,
        fileName: file.name,
        ...(id.trim() ? { id: id.trim() } : {}),
        ...(acc ? { accuracy: acc } : {}),
        ...(inputShape ? { inputShape } : {}),
        ...(preprocess ? { preprocess } : {}),
        ...(set ? { images: set[0]!.upload, labels: set[1]!.upload } : {}),
        ...(imageDir.trim() ? { imageDir: imageDir.trim() } : {})
      })
      setStatus({
        busy: false,
        message: `imported ${r.id}: ${r.layers} layers, ${r.exits.length} exit(s), input ${r.inputShape.join('×')}${r.notes.length ? ` — ${r.notes.join('; ')}` : ''}`,
        error: null
      })
      props.onImported(r.id)
    } catch (err) {
      setStatus({ busy: false, message: null, error: errorMessage(err) })
    }
  }
  return (
    <Card title="Import a model" testId="import-card">
      <p className="hint">
        Any ONNX image classifier, chain or DAG, one output per exit. Each exit's accuracy is measured on a labelled set (idx files of images of the input's
        size) or supplied. The same as <code>npx edgent model import</code>.
      </p>
      <RowForm onSubmit={submit}>
        <input type="file" accept=".onnx" aria-label="ONNX file" data-testid="import-file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <label>
          Id
          <input placeholder="from the file name" value={id} onChange={(e) => setId(e.target.value)} data-testid="import-id" />
        </label>
        <label>
          Accuracies (supplied)
          <input placeholder="a1,a2,…" value={accuracy} onChange={(e) => setAccuracy(e.target.value)} data-testid="import-accuracy" />
        </label>
        <label>
          Input shape
          <input placeholder="1x3x224x224" value={shape} onChange={(e) => setShape(e.target.value)} data-testid="import-shape" />
        </label>
        <label>
          Preprocessing
          <input placeholder="scale=1/255,mean=…,std=…" value={prep} onChange={(e) => setPrep(e.target.value)} data-testid="import-preprocess" />
        </label>
        <label>
          images <input type="file" aria-label="labelled images (idx)" onChange={(e) => setImages(e.target.files?.[0] ?? null)} />
        </label>
        <label>
          labels <input type="file" aria-label="labels (idx)" onChange={(e) => setLabels(e.target.files?.[0] ?? null)} />
        </label>
        <label>
          Or an image folder on the console's machine
          <input placeholder="/path/to/labelled-images" value={imageDir} onChange={(e) => setImageDir(e.target.value)} data-testid="import-image-dir" />
        </label>
        <button type="submit" disabled={status.busy} data-testid="import-submit">
          Import
        </button>
      </RowForm>
      {status.message ? (
        <p className="hint" data-testid="import-message">
          {status.message}
        </p>
      ) : null}
      {status.error ? <ErrorBox error={status.error} /> : null}
    </Card>
  )
}

/**
 * Early exits for the selected model (as `edgent model exits add`): labelled training frames (and
 * optionally held-out ones) are uploaded, the console trains a head at each exit point with the
 * backbone frozen, and the new model joins the library with every exit measured on held-out frames.
 */
function AddExits(props: { model: string; onAdded: (id: string) => void }): React.JSX.Element {
  const api = useApi()
  const [files, setFiles] = useState<Record<'images' | 'labels' | 'testImages' | 'testLabels', File | null>>({
    images: null,
    labels: null,
    testImages: null,
    testLabels: null
  })
  const [at, setAt] = useState('')
  const [count, setCount] = useState('3')
  const [id, setId] = useState('')
  const [epochs, setEpochs] = useState('30')
  const [codecs, setCodecs] = useState(false)
  const [job, setJob] = useState<ModelJobView | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [uploading, setUploading] = useState(false)
  const running = uploading || job?.state === 'running'
  // A running job is followed by polling (it lives in the console, not in this page).
  useEffect(() => {
    if (job?.state !== 'running') return
    const timer = setInterval(() => {
      api
        .modelJobs({})
        .then((all) => {
          const now = all.find((j) => j.id === job.id)
          if (!now) return
          setJob(now)
          if (now.state === 'done' && now.result) props.onAdded(now.result.id)
        })
        .catch((err) => setError(errorMessage(err)))
    }, 1000)
    return () => clearInterval(timer)
  }, [api, job?.id, job?.state, props.onAdded])
  const file = (k: keyof typeof files, label: string) => (
    <label>
      {label}{' '}
      <input type="file" aria-label={label} data-testid={`exits-${k}`} onChange={(e) => setFiles((f) => ({ ...f, [k]: e.target.files?.[0] ?? null }))} />
    </label>
  )
  const submit = async () => {
    setError(null)
    try {
      if (!files.images || !files.labels) throw new Error('give the labelled training frames: images and labels (idx files of the input size)')
      if (!!files.testImages !== !!files.testLabels) throw new Error('held-out frames need both their images and their labels')
      const n = Number(count)
      const ep = Number(epochs)
      if (!at.trim() && (!Number.isInteger(n) || n < 1 || n > 8)) throw new Error('the number of exits is 1–8')
      if (!Number.isInteger(ep) || ep < 1 || ep > 1000) throw new Error('epochs is 1–1000')
      const cap = (await api.status({})).maxUploadBytes
      for (const f of Object.values(files))
        if (f && f.size > cap)
          throw new Error(`${f.name} is ${(f.size / 2 ** 20).toFixed(0)} MiB, over the console's ${(cap / 2 ** 20).toFixed(0)} MiB upload cap`)
      setUploading(true)
      const up = async (f: File | null) => (f ? (await api.upload(f, f.name)).upload : undefined)
      const [images, labels, testImages, testLabels] = [await up(files.images), await up(files.labels), await up(files.testImages), await up(files.testLabels)]
      const started = await api.modelExitsAdd({
        model: props.model,
        images: images!,
        labels: labels!,
        ...(testImages && testLabels ? { testImages, testLabels } : {}),
        ...(at.trim()
          ? {
              at: at
                .split(',')
                .map((v) => v.trim())
                .filter(Boolean)
            }
          : { count: n }),
        ...(id.trim() ? { id: id.trim() } : {}),
        epochs: ep,
        ...(codecs ? { codecs: true } : {})
      })
      setJob(started)
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setUploading(false)
    }
  }
  const p = job?.progress
  return (
    <Card title={`Add early exits to ${props.model}`} testId="exits-card">
      <p className="hint">
        Right-sizes a network that has one exit: exit points among its cut points (or the layers you name), a pooling + softmax head trained at each on your
        labelled frames with the backbone frozen, and a new model whose every exit is measured on held-out frames (yours, else the last fifth of the training
        frames). The same as <code>npx edgent model exits add</code>.
      </p>
      <RowForm onSubmit={submit}>
        {file('images', 'training images (idx)')}
        {file('labels', 'training labels (idx)')}
        {file('testImages', 'held-out images (idx)')}
        {file('testLabels', 'held-out labels (idx)')}
        <label>
          Exits
          <input value={count} onChange={(e) => setCount(e.target.value)} data-testid="exits-count" size={3} />
        </label>
        <label>
          Or after layers
          <input placeholder="layer,layer,…" value={at} onChange={(e) => setAt(e.target.value)} data-testid="exits-at" />
        </label>
        <label>
          New id
          <input placeholder={`${props.model}-exits`} value={id} onChange={(e) => setId(e.target.value)} data-testid="exits-id" />
        </label>
        <label>
          Epochs
          <input value={epochs} onChange={(e) => setEpochs(e.target.value)} data-testid="exits-epochs" size={4} />
        </label>
        <label>
          <input type="checkbox" checked={codecs} onChange={(e) => setCodecs(e.target.checked)} data-testid="exits-codecs" /> measure the codecs' accuracies
        </label>
        <button type="submit" disabled={running} data-testid="exits-submit">
          Add exits
        </button>
        {job?.state === 'running' ? (
          <button type="button" className="secondary" onClick={() => void api.modelJobCancel({ job: job.id }).then(setJob)} data-testid="exits-cancel">
            Cancel
          </button>
        ) : null}
      </RowForm>
      {uploading ? <p className="hint">uploading the frames…</p> : null}
      {job?.state === 'running' ? (
        <ProgressBar value={p?.total ? p.done / p.total : 0} label={p ? `${p.what}: ${p.done} of ${p.total}` : 'starting'} testId="exits-progress" />
      ) : null}
      {job?.state === 'running' && p ? <p className="hint">{`${p.what}: ${p.done} of ${p.total}`}</p> : null}
      {job && job.state !== 'running' && job.state !== 'done' ? <ErrorBox error={`${job.state}: ${job.error ?? ''}`} /> : null}
      {job?.state === 'done' && job.result ? (
        <table className="table" data-testid="exits-result">
          <caption>
            {job.result.id}: trained on {job.result.trainFrames.toLocaleString()} frames, measured on {job.result.heldOutFrames.toLocaleString()} held-out
            frames, {job.result.seconds.toFixed(0)} s
          </caption>
          <thead>
            <tr>
              <th>exit</th>
              <th>after layer</th>
              <th>train accuracy</th>
              <th>held-out accuracy</th>
            </tr>
          </thead>
          <tbody>
            {job.result.exits.map((e) => (
              <tr key={e.exit}>
                <td>{e.exit}</td>
                <td>{e.after ?? "(the model's own)"}</td>
                <td>{e.trainAccuracy === null ? '—' : fmtPct(e.trainAccuracy)}</td>
                <td>{fmtPct(e.accuracy)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
    </Card>
  )
}

function transferText(t: TransferView): string {
  const mb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`)
  if (t.state === 'done') return `holds ${t.model} (${mb(t.totalBytes)})`
  if (t.state === 'failed') return `transfer of ${t.model} failed: ${t.error ?? 'unknown error'}`
  return `fetching ${t.model}: ${mb(t.bytes)} of ${mb(t.totalBytes)}`
}

/** Which model each device is planned and served with, the selected model's assignment, and transfers in progress. */
function Assignment(props: { selected: string; onChanged: () => void }): React.JSX.Element {
  const api = useApi()
  const devices = useQuery<DeviceView[]>(
    () => api.devices({}),
    'devices',
    (e) => e.type === 'devices' || e.type === 'agent-state'
  )
  const [transfers, setTransfers] = useState<Record<string, TransferView>>({})
  const [target, setTarget] = useState(EVERY)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useConsoleEvents((e) => {
    if (e.type === 'transfer') setTransfers((t) => ({ ...t, [e.data.agentId]: e.data }))
    if (e.type === 'transfer' && e.data.state !== 'sending') devices.reload()
  })
  const paired = (devices.data ?? []).filter((d) => d.paired)
  const use = async (model: string | null, agent: string | null) => {
    setBusy(true)
    setError(null)
    try {
      await api.modelUse({ model, ...(agent ? { agent } : {}) })
      devices.reload()
      props.onChanged()
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Card title="Devices and their models" testId="assign-card">
      <p className="hint">
        A device is planned and served with the model assigned to it, else the default. An agent that does not hold its model fetches it from this console over
        MQTT (1 MiB chunks, each checked with SHA-256, resumed after a dropped connection).
      </p>
      <RowForm onSubmit={() => use(props.selected, target === EVERY ? null : target)}>
        <span>
          use <b>{props.selected}</b> for
        </span>
        <select value={target} onChange={(e) => setTarget(e.target.value)} data-testid="assign-target" aria-label="device">
          <option value={EVERY}>{EVERY}</option>
          {paired.map((d) => (
            <option key={d.id} value={d.id}>
              {d.id}
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy} data-testid="assign-submit">
          Use this model
        </button>
      </RowForm>
      {error ? <ErrorBox error={error} /> : null}
      <Guard q={devices} what="devices" empty={() => (paired.length ? null : 'No paired device.')}>
        {() => (
          <table className="table" data-testid="assign-table">
            <thead>
              <tr>
                <th>device</th>
                <th>state</th>
                <th>model</th>
                <th>transfer</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {paired.map((d) => {
                const t = transfers[d.id] ?? d.transfer
                return (
                  <tr key={d.id} data-testid={`assign-${d.id}`}>
                    <td>{d.id}</td>
                    <td>{d.state}</td>
                    <td>
                      {d.model}
                      {d.modelAssigned ? '' : ' (default)'}
                    </td>
                    <td>
                      {t && t.state === 'sending' ? (
                        <ProgressBar value={t.totalBytes ? t.bytes / t.totalBytes : 0} label={transferText(t)} testId={`transfer-${d.id}`} />
                      ) : t ? (
                        <span data-testid={`transfer-${d.id}`}>{transferText(t)}</span>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td>
                      {d.modelAssigned ? (
                        <button type="button" className="secondary" disabled={busy} onClick={() => void use(null, d.id)}>
                          back to the default
                        </button>
                      ) : null}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        )}
      </Guard>
    </Card>
  )
}

export function Models(): React.JSX.Element {
  const api = useApi()
  const models = useQuery<LibraryModelView[]>(
    () => api.models({}),
    'models',
    (e) => e.type === 'devices'
  )
  const [selected, setSelected] = useState<string | null>(null)
  const [exit, setExit] = useState<number | null>(null)
  useEffect(() => {
    if (!selected && models.data?.length) setSelected((models.data.find((m) => m.serving) ?? models.data[0]!).id)
  }, [models.data, selected])
  const cuts = useQuery<ModelCutsView>(selected ? () => api.modelCuts({ model: selected }) : null, selected ?? '')
  const onAdded = useCallback(() => models.reload(), [models.reload])
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
                  <th>devices</th>
                </tr>
              </thead>
              <tbody>
                {d.map((m) => (
                  <tr key={m.id} className={m.id === selected ? 'selected' : ''} data-testid={`model-${m.id}`}>
                    <td>
                      <button type="button" className="link" onClick={() => setSelected(m.id)}>
                        {m.id}
                      </button>
                      {m.serving ? ' (default)' : ''}
                    </td>
                    <td>{m.source}</td>
                    <td>{m.inputShape.join('×')}</td>
                    <td>{m.exits.map((e) => `${e.exit}: ${accuracyText(e)}`).join(', ')}</td>
                    <td>{m.onnxBytes?.toLocaleString() ?? '—'}</td>
                    <td title={m.sha256 ?? ''}>{m.sha256?.slice(0, 12) ?? '—'}</td>
                    <td>{m.devices.join(', ') || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Guard>
      </Card>
      <Import
        onImported={(id) => {
          models.reload()
          setSelected(id)
        }}
      />
      {selected ? <Assignment selected={selected} onChanged={models.reload} /> : null}
      {selected ? <AddExits model={selected} onAdded={onAdded} /> : null}
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
