/**
 * The console API: the one contract between the console core and its user interfaces. The renderer
 * talks only to `ConsoleApi`; the Electron shell carries it over IPC (one channel per method), the
 * headless shell over a WebSocket, the `edgent` CLI over loopback HTTP. Argument schemas (zod) live
 * in `src/main/console/api/api-schemas.ts`, checked by the service every transport calls.
 *
 * Names: `latencyMs` is always a latency requirement; `uplinkKbps` the uplink rate a plan assumed;
 * `uplinkSampleKbps` one measured sample; `uplinkEstimateKbps` the smoothed estimate.
 *
 * Pure types and constants: no Node, no DOM, no zod (the sandboxed preload bundles this file).
 */
import type { Settings } from './settings.js'
import type { CostTable, Breakdown } from '../algorithms/planner.js'
import type { Health, Hello, PlanMessage } from './messages.js'
import type { RegressionKey, Regressor, Side } from '../algorithms/latency.js'
import type { TailModel } from '../algorithms/tail.js'
import type { StageName, Stages } from './stages.js'
import type { Codec } from '../algorithms/codecs.js'
import type { GateScore } from '../algorithms/correction.js'

// ------------------------------------------------------------------ shared records

export interface DeviceView {
  id: string
  paired: boolean
  state: string
  hello: Hello | null
  plan: PlanMessage | null
  reportedPlanId: string | null
  /** The console's smoothed uplink estimate for this device, kbit/s. */
  uplinkEstimateKbps: number | null
  /** What the planner predicts this device's latencies with (null once unpaired). */
  latencySource: LatencySource | null
  /** The model the device is planned and served with, and whether it was assigned to it (else it follows the default). */
  model: string
  modelAssigned: boolean
  /** Its latest model transfer, if any. */
  transfer: TransferView | null
  /** Its latest health report (temperature, throttling, frequency, load, memory), while it reports. */
  health: Health | null
  /** Its share of the edge lately (null: no frame in the load window). */
  edge?: EdgeLoadDevice | null
}

/** One device's share of the edge, over the load window (edge-load.ts). */
export interface EdgeLoadDevice {
  id: string
  runsPerSecond: number
  /** Every frame it sent (device-only reports included): its inference rate. */
  framesPerSecond: number
  /** Its edge runs' mean wait for a free worker, ms. */
  meanWaitMs: number
  /** Its share of the pool's capacity, 0..1. */
  utilisation: number
}

/** The edge's measured load: its pool of ORT workers, shared by the fleet. */
export interface EdgeLoadView {
  workers: number
  /** Runs waiting for a worker now. */
  queued: number
  windowMs: number
  runsPerSecond: number
  /** Service time over window × workers, 0..1. */
  utilisation: number
  meanWaitMs: number
  p95WaitMs: number
  meanServiceMs: number
  devices: EdgeLoadDevice[]
  /** Whether plans take the load into account (load-aware planning). */
  loadAware?: boolean
}

/** A fitted profile (the current one when it predicts every layer of the served model), or the measured per-layer tables. */
export interface LatencySource {
  kind: 'profile' | 'measured'
  /** The current profile, even when it cannot be used (see `problem`). */
  profileId: string | null
  problem: string | null
  /**
   * Why the calibration no longer matches the device — it announced another speed since its profile
   * was fitted, or plans measured far from their predictions — and what is planned with instead; null: it does.
   */
  stale: string | null
}

export interface ProfileView {
  id: string
  agentId: string
  campaignId: string
  campaignKind: string
  createdAt: string
  current: boolean
  fits: FitReport[]
}

export interface Pairing {
  id: string
  /** Shown once; the console keeps only its hash. */
  token: string
  /** The exact command to run on the Pi, beside the credentials file. */
  command: string
  /** The agent's credentials file (id, broker URL, token, CA for mqtts://), to save as `<id>.credentials.json` with mode 0600. */
  credentials: string
  /** The broker URL inside it (mqtts:// when the console has TLS). */
  broker: string
  /** The id was paired before (with force): its old token is dead. */
  replaced: boolean
  /** …and its agent was online, and has been disconnected. */
  disconnected: boolean
}

/** A paired edge worker (issue 34), or the console's own pool (id `console`), as the Workers card shows it. */
export interface WorkerView {
  id: string
  state: 'online' | 'dead' | 'unknown'
  version: string | null
  /** ORT threads: the runs it takes at once. */
  pool: number | null
  models: string[]
  /** Runs sent to it and not answered yet. */
  inFlight: number
  /** Runs waiting for one of its threads, as its last heartbeat said. */
  queued: number | null
  /** Smoothed session time and round trip beyond it, ms. */
  serviceMs: number | null
  tripMs: number | null
  answered: number
  /** Its answers refused (a job it was not given, malformed, an error). */
  refused: number
  /** Times it was declared dead (its heartbeat stopped). */
  deaths: number
  lastSeenMsAgo: number | null
}

/** A worker's pairing: the command that starts it (the token is shown once). */
export interface WorkerPairing {
  id: string
  token: string
  broker: string
  command: string
  replaced: boolean
}

export type CampaignKind = 'layers' | 'model' | 'sweep' | 'plans'
export const CAMPAIGN_KINDS: readonly CampaignKind[] = ['layers', 'model', 'sweep', 'plans']

/** One (bandwidth, requirement) point of a sweep: the plan, and its predicted against measured end-to-end latency. */
export interface SweepPoint {
  uplinkKbps: number
  latencyMs: number
  runId: string
  exit: number
  deviceLayers: number
  layers: number
  feasible: boolean
  /** The plan's prediction (with the online correction learned so far), ms. */
  predictedMs: number
  /** Median measured end-to-end latency, ms. */
  measuredMs: number
  /** Median over the point's inferences of |predicted − measured| / measured. */
  relError: number
  metShare: number
  accuracy: number | null
  completed: number
}

export interface SweepSummary {
  bandwidthsKbps: number[]
  latenciesMs: number[]
  inferencesPerPoint: number
  points: SweepPoint[]
  /** Median over every inference of the sweep of |predicted − measured| / measured. */
  medianRelError: number | null
}

/** The three parts of a plan a plans campaign compares, ms. */
export interface PlanParts {
  /** The device prefix (0 when the plan runs nothing there). */
  deviceMs: number
  /** The edge suffix (0 when device-only). */
  edgeMs: number
  /** End to end, at the campaign's fixed uplink. */
  e2eMs: number
}

/** One (exit, deviceLayers) of a plans campaign: what the device's latency source predicted (no online correction) against the medians measured. */
export interface PlanCheckPoint {
  exit: number
  deviceLayers: number
  layers: number
  /** Its runs, one per pass (the stored inferences, warm-ups included). */
  runIds: string[]
  /** Inferences in its medians (warm-ups left out). */
  completed: number
  predicted: PlanParts
  measured: PlanParts
}

/** Relative errors |predicted − measured| / measured over a set of points. */
export interface ErrorStats {
  n: number
  median: number | null
  p90: number | null
  /** Shares of the points within ±5 % and ±10 % (the field's figure). */
  within5: number | null
  within10: number | null
}

export interface PlansSummary {
  /** Every plan co-infers at this uplink (the device's emulated link set to it). */
  uplinkKbps: number
  /** Measured inferences per plan, over all passes. */
  inferencesPerPlan: number
  passes: number
  /** Inferences at the start of each plan's batch in every pass, stored but left out of its medians. */
  warmupPerPass: number
  /** What predicted: the device's latency source when the campaign started. */
  source: { kind: 'profile' | 'measured'; profileId: string | null; predictor: string }
  points: PlanCheckPoint[]
  /** Plans that send more than the console accepts (its packet limit): they cannot run, so they are not measured. */
  unsendable: { exit: number; deviceLayers: number; bytes: number }[]
  /** Over device segments (plans with deviceLayers > 0), edge segments (deviceLayers < layers) and end to end. */
  errors: { device: ErrorStats; edge: ErrorStats; e2e: ErrorStats }
  /**
   * The measurement's noise ceiling (test–retest): every plan's pass medians scored against its later
   * passes' as if they were predictions. Absent before a second pass.
   */
  retest?: { device: ErrorStats; edge: ErrorStats; e2e: ErrorStats }
  /** The same errors without the plans the source profile's link stage co-inferred (its probes), when it had one. */
  errorsWithoutProbes?: { device: ErrorStats; edge: ErrorStats; e2e: ErrorStats; probes: { exit: number; deviceLayers: number }[] }
  /**
   * How far the machine's speed moved since the source profile's link stage: per side, this campaign's
   * measured probe plans over the link stage's (median), and the errors with that drift taken out (a
   * diagnostic, not a prediction). Absent without link-stage probes.
   */
  drift?: { device: number | null; edge: number | null; probes: number; errors: { device: ErrorStats; edge: ErrorStats; e2e: ErrorStats } }
  /** When done: every latency source that could plan the device, scored on the same measured plans (raw, no online correction). */
  predictors?: {
    name: string
    errors: { device: ErrorStats; edge: ErrorStats; e2e: ErrorStats }
    /** The grid's held-out MAPE per side, pooled over its held-out configurations (fitted profiles only). */
    gridHeldOut?: { device: number | null; edge: number | null }
    /** This is what the device plans with now (after the campaign's choice, if it made one). */
    current?: boolean
  }[]
  /** The regressor of the source profile the campaign chose by these errors (end to end), or why it did not. */
  choice?: { regressor: Regressor; changed: boolean; why: string }
}

/**
 * A campaign's link stage (src/main/console/features/campaigns/link-stage.ts, fitted by src/main/calibration/link-fit.ts): messaging besides the segments and the
 * serialisation wait, and each side's segments as plans run them, from probe plans of the served model.
 */
export interface LinkStage {
  /**
   * fixed + perByte × bytes sent [+ perIdle × the device segment before the send], ms, for plans that
   * send something; `form` names the terms kept, `looErrorMs` their leave-one-out error on the probes.
   */
  messaging: { fixedMs: number; perByteMs: number; perIdleMs?: number; form?: string; looErrorMs?: number | null } | null
  /**
   * Per side: a plan's segment = fixedMs + scale × the composed prediction [+ perInputElementMs × the
   * elements it receives] [+ perIdleMs × the idle before it] [+ sendingMs when the plan sends: a device
   * segment whose worker waited out the plan's remote part]; `form` names the terms the probes
   * pinned down, `looError` their leave-one-out mean relative error on the probes.
   */
  segments: Record<
    'device' | 'edge',
    {
      fixedMs: number
      scale: number
      perInputElementMs?: number
      perOutputElementMs?: number
      perIdleMs?: number
      sendingMs?: number
      form?: string
      looError?: number | null
    }
  > | null
  /** The probes: medians over `n` co-inferences each, and the fitted profile's predictions before this stage. */
  probes: {
    exit: number
    deviceLayers: number
    layers: number
    n: number
    bytes: number
    residualMs: number
    deviceMs: number
    edgeMs: number
    predictedDeviceMs: number
    predictedEdgeMs: number
    /** Elements the edge segment receives (the image, or the activation at the cut). */
    inputElements?: number
    /** Elements the device segment receives (the image) and hands on (the activation at the cut, or the exit's output). */
    deviceInputElements?: number
    outputElements?: number
  }[]
  /** Why the stage did not run (a device whose uplink cannot be set). */
  why: string | null
}

export interface FitReport {
  side: Side
  key: RegressionKey
  n: number
  r2: number | null
  mape: number | null
  heldOutN: number
  heldOutMape: number | null
  heldOutR2: number | null
  /** Why the fit is not the campaign's full regression (or why there is none). */
  error?: string
  /** The regression fell back (too few points per parameter, or no held-out point): `error` says to what and why. */
  fallback?: boolean
  /** `block` only: the held-out MAPE of the sum over each block's ops, and whether it beat the block term. */
  sumHeldOutMape?: number
  preferSum?: boolean
  /** The tree ensemble fitted beside the linear fit (ml-random-forest): its held-out MAPE on the same points. */
  forestHeldOutMape?: number | null
  /** The paper's variables alone on the same points (where the campaign's form has more): their held-out MAPE. */
  paperHeldOutMape?: number | null
}

export interface CampaignStatus {
  id: string
  agentId: string
  kind: string
  status: 'running' | 'done' | 'failed' | 'interrupted' | 'cancelled'
  /** 0..1 */
  progress: number
  startedAt: string
  finishedAt: string | null
  error: string | null
  profileId: string | null
  fits: FitReport[] | null
  measurements: number
  /** Kind `sweep`: the points measured so far. */
  sweep: SweepSummary | null
  /** Kind `plans`: the plans measured so far, predicted against measured. */
  plans: PlansSummary | null
  /** Kinds `layers` and `model`, when done: the link stage (or why it did not run). */
  link: LinkStage | null
  /** What may have spoilt the measurements: the device throttled, or its CPU frequency changed, during the campaign. */
  warnings: string[]
  /** While it runs, in kinds measured in several passes (layers): the pass under way, 1-based, of how many. */
  pass: { current: number; of: number } | null
  /** The model the device was planned with when it started (null: not recorded, campaigns before schema 9). */
  model: string | null
  tags: string[]
  note: string
}

/** One measured configuration of a campaign, with the fitted regression's prediction for it. */
export interface CalibrationPoint {
  side: Side
  key: RegressionKey
  features: number[]
  runMs: number
  /** The campaign profile's prediction for these features, ms (null when the key has no fit). */
  predictedMs: number | null
  heldOut: boolean
}

export interface Calibration {
  campaign: CampaignStatus
  /** Feature names per regression key, in the order of `features`. */
  featureNames: Record<string, readonly string[]>
  /** Regression coefficients per side and key: `intercept + Σ coef·feature`. */
  regressions: { side: Side; key: RegressionKey; intercept: number; coefficients: number[] }[]
  /** At most CALIBRATION_POINTS_SHOWN, evenly spaced in measurement order when there are more. */
  points: CalibrationPoint[]
  /** The points there are (one per configuration and side, and the model-loading ones). */
  pointsTotal: number
}

/** Points a calibration view carries at most (a chart of more says nothing more, and costs the page). */
export const CALIBRATION_POINTS_SHOWN = 5000

/** A model of the library: shipped with the console or imported into its data directory. */
export interface LibraryModelView {
  id: string
  source: 'shipped' | 'imported'
  inputShape: number[]
  exits: { exit: number; layers: number; accuracy: number; accuracySource: 'measured' | 'supplied' }[]
  onnxBytes: number | null
  sha256: string | null
  /** The console's default model (devices without an assignment are planned with it). */
  serving: boolean
  /** Paired devices planned with it. */
  devices: string[]
}

/** Per exit, every cut point of a model: what crosses the link there and the compute on each side (Neurosurgeon's picture). */
export interface ModelCutsView {
  id: string
  inputBytes: number
  exits: {
    exit: number
    accuracy: number
    accuracySource: 'measured' | 'supplied'
    /** deviceLayers 0 (edge-only) … N (device-only). */
    cuts: {
      deviceLayers: number
      tensor: string
      layer: string | null
      type: string
      ops: Record<string, number> | null
      bytes: number
      deviceMacs: number
      edgeMacs: number
    }[]
  }[]
}

export interface ModelLayerView {
  id: string
  type: string
  outputShape: number[]
  outputBytes: number
}

export interface ModelView {
  id: string
  inputShape: number[]
  inputBytes: number
  layers: ModelLayerView[]
  exits: { exit: number; accuracy: number; layers: string[] }[]
}

/** Per-layer latency of one exit's path: measured (single-layer slices) and predicted (regressions). */
export interface LayerLatencies {
  agentId: string
  exit: number
  /** Where the predictions come from: the device's current fitted profile, or the paper's table. */
  profile: { id: string; name: string; fitted: boolean }
  layers: {
    id: string
    type: string
    deviceMeasuredMs: number
    edgeMeasuredMs: number
    /** null where the profile has no regression for the layer's type. */
    devicePredictedMs: number | null
    edgePredictedMs: number | null
  }[]
}

export interface InferRow {
  requestId: string
  sample: number | null
  label: number | null
  predictedLabel: number
  correct: boolean | null
  exit: number
  deviceLayers: number
  planId: string
  predictedMs: number
  predicted: Breakdown
  deviceMs: number
  transferMs: number
  edgeMs: number
  e2eMs: number
  met: boolean
  uplinkKbps: number
  uploadBytes: number
  /** How the activation crossed the link (absent: f32). */
  codec?: Codec
  /** Under a confidence-exit policy: the side of the exit that answered (`exit`), and its calibrated confidence. */
  side?: 'device' | 'edge'
  confidence?: number
  /** Where the time went, stage by stage, when both sides timed theirs (stages.ts). */
  stages?: Stages
}

/** A change of a device's exit thresholds by its audits. */
export interface AuditChangeView {
  at: string
  /** Audited frames in the window when it was made. */
  frames: number
  from: (number | null)[]
  to: (number | null)[]
  /** Disagreement with the final exit on the window, under the old and the new thresholds. */
  before: number
  after: number
}

/** A device's confidence-exit policies: whether its plans may use them, why not, and its audits. */
export interface ExitPoliciesView {
  agent: string
  enabled: boolean
  /** Why its plans cannot use policies now (the model has none measured, the agent predates them…); null: they can. */
  unavailable: string | null
  /** Share of frames audited, the disagreement bound, whether audits move the thresholds. */
  auditShare: number
  bound: number
  tune: boolean
  /** Audited frames in the window, and the thresholds' disagreement with the final exit on it. */
  frames: number
  disagreement: number | null
  thresholds: (number | null)[] | null
  changes: AuditChangeView[]
}

export interface InferSummary {
  runId: string
  agentId: string
  count: number
  completed: number
  lost: number
  latencyMs: number
  uplinkKbps: number
  bandwidthSource: 'fixed' | 'estimate'
  /** The first plan: its typical prediction, and (tail-aware) its prediction at the percentile, which `feasible` is judged on. */
  plan: {
    planId: string
    exit: number
    deviceLayers: number
    layers: number
    predictedMs: number
    predictedPercentileMs?: number
    /** A confidence-exit policy's plan: the policy (its index in the manifest) and the predicted mixture, where frames leave. */
    policy?: number
    mixture?: { exit: number; side: 'device' | 'edge'; share: number; ms: number }[]
    feasible: boolean
    codec?: Codec
    /** Pinned by the user (not planned): `feasible` then says whether its prediction meets the requirement. */
    pinned?: true
  }
  /** The percentile the requirement was given at (tail-aware planning), null: the typical inference. */
  percentile: number | null
  /** The device's measured dispersion the plans were chosen with (tail-aware planning). */
  tail: TailModel | null
  /** The measured end-to-end latency at `percentile`, ms (null without one). */
  percentileMs: number | null
  /** Under a confidence-exit policy: where this batch's frames left (exit and side), their share and mean latency. */
  leftAt?: { exit: number; side: 'device' | 'edge'; share: number; meanMs: number }[]
  p50Ms: number
  p95Ms: number
  accuracy: number | null
  metShare: number
  planChanges: number
  /** End-to-end prediction error of this batch, with the online corrections learned before it and without any. */
  prediction: {
    mapeCorrected: number | null
    mapeUncorrected: number | null
    deviceFactor: number
    edgeFactor: number
    overheadMs: number
    /** Per plan family, whether its plans are predicted with the correction (only while it measures better than none). */
    families?: GateScore[]
  }
  /** Where the time went: each stage's median over the batch's inferences that carry stages (stages.ts); null when none did. */
  stagesMedianMs?: Record<StageName, number> | null
  /** Why the batch ended before its count (its caller went away); absent: it ran whole. */
  stopped?: string
  /** A run made of several batches (the Live page's): how many; absent: one. */
  batches?: number
}

/** A co-inference run (a batch of `edgent infer`, the Live page, or a campaign's), as listed and compared. */
export interface RunView {
  id: string
  agentId: string
  /** The campaign that ran it (null: the user's own run). */
  campaignId: string | null
  /** The model the device was served with (null: not recorded). */
  model: string | null
  status: 'running' | 'done' | 'failed' | 'interrupted' | 'cancelled'
  startedAt: string
  finishedAt: string | null
  error: string | null
  tags: string[]
  note: string
  /** Done runs: what the batch measured. */
  summary: InferSummary | null
}

/** One measure of two runs side by side (`delta` = b − a; `better`: which is better, null: equal, no direction or not comparable). */
export interface ComparisonRow {
  measure: string
  unit: string
  a: number | string | null
  b: number | string | null
  delta: number | null
  better: 'a' | 'b' | null
}

/** Two runs side by side (`edgent runs compare`, the Live page). */
export interface RunComparison {
  runs: [RunView, RunView]
  rows: ComparisonRow[]
  /** What differs between them that the numbers do not show (model, device, requirement, uplink, plan). */
  differs: string[]
  /** Each run's end-to-end latency quantiles over its completed inferences, ms. */
  quantiles: { q: number; a: number | null; b: number | null }[]
  /**
   * The measurement's own noise: b − a at p50 and p95 with 95 % bootstrap intervals (1,000
   * resamples of each run's inferences); `clear`: the interval excludes 0.
   */
  differences: { q: number; deltaMs: number; lowMs: number; highMs: number; clear: boolean }[]
}

/** Whose inferences: the user's runs (Live, `edgent infer`), a campaign's, or all. */
export type InferenceSource = 'user' | 'campaign' | 'all'

/** A stored inference, as the Live page charts it (times in ms). */
export interface InferencePoint {
  id: number
  at: string
  runId: string | null
  planId: string
  exit: number
  deviceLayers: number
  latencyMs: number
  predictedMs: number
  deviceMs: number
  transferMs: number | null
  edgeMs: number
  e2eMs: number | null
  met: boolean | null
  correct: boolean | null
  /** The uplink rate the inference's plan assumed, kbit/s. */
  uplinkKbps: number | null
  /** The model it ran. */
  model: string
}

/** One uplink sample (an activation transfer or a probe) and the smoothed estimate after it. */
export interface BandwidthPoint {
  at: string
  source: 'activation' | 'probe'
  uplinkSampleKbps: number
  uplinkEstimateKbps: number
}

export interface ExportFile {
  fileName: string
  mimeType: string
  content: string
  summary: string
}

/** The Settings page: what is stored for the next start, and what this console runs with now. */
export interface SettingsView {
  /** The data directory (chosen by EDGENT_DATA_DIR, XDG_DATA_HOME or --data-dir, not a setting). */
  dataDir: string
  /** Where the settings are kept. */
  file: string
  stored: Settings
  defaults: Settings
  /** This console's values now: stored settings, unless a flag or an environment variable overrode them. */
  running: Settings
  /** Settings whose stored value differs from the running one: the next start applies them. */
  restartNeeded: string[]
  shell: 'electron' | 'headless'
}

export interface ConsoleStatus {
  model: string
  mqttPort: number
  devices: number
  shell: 'electron' | 'headless'
  /** The largest file `upload` accepts, bytes (a page checks a file's size before it sends it). */
  maxUploadBytes: number
}

// ------------------------------------------------------------------ methods

/** Every method: its argument object and its result. */
export interface ConsoleMethods {
  status: { args: Record<string, never>; result: ConsoleStatus }
  devices: { args: Record<string, never>; result: DeviceView[] }
  pair: { args: { id: string; force?: boolean }; result: Pairing }
  unpair: { args: { id: string }; result: { id: string; revoked: boolean; disconnected: boolean } }
  workers: { args: Record<string, never>; result: WorkerView[] }
  workerPair: { args: { id: string; force?: boolean }; result: WorkerPairing }
  workerUnpair: { args: { id: string }; result: { id: string; revoked: boolean; disconnected: boolean } }
  campaigns: { args: Record<string, never>; result: CampaignStatus[] }
  campaignStart: {
    /** `uplinkKbps`: kind `plans` only, the fixed uplink its plans co-infer at; `timing`: kind `layers` only (warm or cold, see TIMING_REGIMES). */
    args: {
      agent: string
      kind: CampaignKind
      reps?: number
      bandwidthsKbps?: number[]
      latenciesMs?: number[]
      uplinkKbps?: number
      timing?: 'warm' | 'cold'
      tags?: string[]
      note?: string
    }
    result: { id: string }
  }
  campaignStatus: { args: { id: string }; result: CampaignStatus }
  campaignCancel: { args: { id: string }; result: { id: string } }
  calibration: { args: { campaign: string }; result: Calibration }
  /** The default model, or the one a device is planned with. */
  modelInfo: { args: { agent?: string }; result: ModelView }
  layerLatencies: { args: { agent: string; exit?: number }; result: LayerLatencies }
  costTable: { args: { agent: string }; result: CostTable }
  /** A device's measured dispersion at a percentile: what tail-aware planning scales the cost table by. */
  tail: { args: { agent: string; percentile: number }; result: TailModel }
  /** The edge's measured load (its worker pool, per device), and whether plans use it. */
  load: { args: Record<string, never>; result: EdgeLoadView }
  infer: {
    args: {
      agent: string
      count: number
      latencyMs: number
      uplinkKbps?: number
      plan?: { exit: number; deviceLayers: number; codec?: Codec }
      percentile?: number
      tags?: string[]
      note?: string
      /** Continue that run (the caller's own earlier batch): this batch's rows join it. The result is this batch's summary. */
      continues?: string
    }
    result: { summary: InferSummary; rows: InferRow[] }
  }
  /** Runs, newest first (`source` default: the user's own runs). */
  runs: { args: { agent?: string; source?: InferenceSource; tag?: string; limit?: number }; result: RunView[] }
  /** Sets a run's or a campaign's tags and/or note (each replaced whole). */
  annotate: {
    args: { target: 'run' | 'campaign'; id: string; tags?: string[]; note?: string }
    result: { target: 'run' | 'campaign'; id: string; tags: string[]; note: string }
  }
  /** Two runs side by side. */
  runCompare: { args: { a: string; b: string }; result: RunComparison }
  /** The latest `limit` inferences, or (with `afterId`) the first `limit` after that id; oldest first. */
  inferences: { args: { agent: string; limit?: number; afterId?: number; source?: InferenceSource }; result: InferencePoint[] }
  bandwidth: { args: { agent: string; limit?: number }; result: BandwidthPoint[] }
  /** Calibration data (`what` calibration, the default; `campaign` narrows it), or every inference (`runs`), uplink sample (`bandwidth`) or plan of a plans campaign (`plans`), of one `agent` or all. */
  exportCalibration: {
    args: { format: 'json' | 'csv'; campaign?: string; what?: 'calibration' | 'runs' | 'bandwidth' | 'plans'; agent?: string }
    result: ExportFile
  }
  profiles: { args: { agent: string }; result: ProfileView[] }
  /** `profile: null` plans with the measured per-layer tables. */
  /** `regressor`: which of the profile's regressors predicts (the user's choice, kept by plans campaigns). */
  useProfile: { args: { agent: string; profile: string | null; regressor?: Regressor }; result: LatencySource }
  /** The model library: shipped and imported models. */
  models: { args: Record<string, never>; result: LibraryModelView[] }
  /** A library model's cut points, per exit. */
  modelCuts: { args: { model: string }; result: ModelCutsView }
  /**
   * Chooses the model a device (or, without `agent`, every device without its own assignment) is
   * planned and served with; `model: null` goes back to the default. Agents that lack it fetch it.
   */
  modelUse: { args: { model: string | null; agent?: string }; result: { model: string; agentId: string | null; devices: string[] } }
  /** Every device's latest model transfer. */
  transfers: { args: Record<string, never>; result: TransferView[] }
  settings: { args: Record<string, never>; result: SettingsView }
  /** Stores settings for the next start (validated whole; nothing changes on a refusal). */
  settingsUpdate: { args: { settings: Settings }; result: SettingsView }
  /**
   * Imports an uploaded ONNX file into the library (as `edgent model import`); `images`/`labels` are
   * uploaded idx files of a labelled set, or `imageDir` an image folder on the console's machine, else
   * `accuracy` supplies each exit's. The uploads are removed.
   */
  modelImport: {
    args: {
      upload: string
      fileName: string
      id?: string
      inputShape?: number[]
      preprocess?: { scale?: number; mean?: number[]; std?: number[] }
      accuracy?: number[]
      images?: string
      labels?: string
      /** A labelled image folder on the console's machine (as `--image-dir`). */
      imageDir?: string
    }
    result: ModelImportView
  }
  /**
   * Starts adding early exits to a library model (as `edgent model exits add`): `images`/`labels` are
   * uploaded idx files of labelled training frames, `testImages`/`testLabels` held-out ones (else the
   * last fifth of the training frames is held out). The new model joins the library when the job is done.
   */
  modelExitsAdd: {
    args: {
      model: string
      images: string
      labels: string
      testImages?: string
      testLabels?: string
      /** Layer ids an exit follows (default: proposed). */
      at?: string[]
      count?: number
      id?: string
      epochs?: number
      seed?: number
      /** Also measure the codecs' accuracies on held-out frames (as `model verify --codecs`). */
      codecs?: boolean
    }
    result: ModelJobView
  }
  /** The model jobs of this console's run (newest first). */
  modelJobs: { args: Record<string, never>; result: ModelJobView[] }
  /** Cancels a running model job (it stops at its next frame or epoch; nothing is written). */
  modelJobCancel: { args: { job: string }; result: ModelJobView }
  /** A device's confidence-exit policies and audits (issue 31): set what is given, and the view. */
  exitPolicies: {
    args: { agent: string; enabled?: boolean; auditShare?: number; bound?: number; tune?: boolean }
    result: ExitPoliciesView
  }
}

export type MethodName = keyof ConsoleMethods
export type ArgsOf<M extends MethodName> = ConsoleMethods[M]['args']
export type ResultOf<M extends MethodName> = ConsoleMethods[M]['result']

export const METHOD_NAMES = [
  'status',
  'devices',
  'pair',
  'unpair',
  'workers',
  'workerPair',
  'workerUnpair',
  'campaigns',
  'campaignStart',
  'campaignStatus',
  'campaignCancel',
  'calibration',
  'modelInfo',
  'layerLatencies',
  'costTable',
  'tail',
  'load',
  'infer',
  'inferences',
  'runs',
  'annotate',
  'runCompare',
  'bandwidth',
  'exportCalibration',
  'profiles',
  'useProfile',
  'models',
  'modelCuts',
  'modelUse',
  'transfers',
  'modelImport',
  'modelExitsAdd',
  'modelJobs',
  'modelJobCancel',
  'exitPolicies',
  'settings',
  'settingsUpdate'
] as const satisfies readonly MethodName[]

// ------------------------------------------------------------------ events

/** A file received by a shell for a later call (`modelImport`): pass `upload` back. */
export interface UploadView {
  upload: string
  fileName: string
  bytes: number
}

/** What an import through the console API made. */
export interface ModelImportView {
  id: string
  layers: number
  exits: { exit: number; layers: number; accuracy: number; accuracySource: 'measured' | 'supplied' }[]
  inputShape: number[]
  notes: string[]
}

/** Long work on the model library (adding exits), followed by polling `modelJobs`. */
export interface ModelJobView {
  id: string
  kind: 'exits-add'
  /** The source model, and the id the new one gets. */
  model: string
  newModel: string
  state: 'running' | 'done' | 'failed' | 'cancelled'
  startedAt: number
  endedAt: number | null
  progress: { done: number; total: number; what: string } | null
  error: string | null
  result: {
    id: string
    trainFrames: number
    heldOutFrames: number
    seconds: number
    /** Every exit of the new model: the added ones (with the layer they follow) and the model's own. */
    exits: { exit: number; after: string | null; accuracy: number; trainAccuracy: number | null }[]
  } | null
}

/** A model's transfer to a device (the agent pulls it in chunks; the console counts what it has sent). */
export interface TransferView {
  agentId: string
  model: string
  sha256: string
  state: 'sending' | 'done' | 'failed'
  /** Bytes of the model's files the agent holds or has been sent (resumed bytes included once known). */
  bytes: number
  totalBytes: number
  error?: string
}

export interface ConsoleEvents {
  'agent-state': { id: string; state: string }
  plan: { id: string; plan: PlanMessage }
  bandwidth: { id: string; uplinkEstimateKbps: number; uplinkSampleKbps: number; source: 'activation' | 'probe' }
  campaign: CampaignStatus
  inferences: { id: string; summary: InferSummary }
  devices: { reason: string }
  transfer: TransferView
  health: { id: string; health: Health }
}
export type EventName = keyof ConsoleEvents
export const EVENT_NAMES = [
  'agent-state',
  'plan',
  'bandwidth',
  'campaign',
  'inferences',
  'devices',
  'transfer',
  'health'
] as const satisfies readonly EventName[]

export type ConsoleEvent = { [E in EventName]: { type: E; data: ConsoleEvents[E] } }[EventName]

/** What the renderer sees, whichever shell carries it. */
export type ConsoleApi = { [M in MethodName]: (args: ArgsOf<M>) => Promise<ResultOf<M>> } & {
  /** Subscribes to every console event; returns the unsubscribe function. */
  onEvent(listener: (event: ConsoleEvent) => void): () => void
  /** Which shell serves this window. */
  readonly shell: 'electron' | 'headless'
  /** Sends a file to the console (capped, see `maxImportBytes`), for a call that names the upload. */
  upload(data: ArrayBuffer | Blob, fileName: string): Promise<UploadView>
}

// ------------------------------------------------------------------ transports

/** Electron IPC: one channel per method, one for events (main → renderer). */
export const ipcChannel = (m: MethodName): string => `edgent:${m}`
export const IPC_EVENT_CHANNEL = 'edgent:event'
/** Electron IPC: a file upload `{fileName, data: ArrayBuffer}` → UploadView. */
export const IPC_UPLOAD_CHANNEL = 'edgent:upload'
/** Headless: `POST /upload?name=<file name>` with the bytes as the body (bearer token) → {ok, data: UploadView}. */
export const UPLOAD_PATH = '/upload'

/**
 * WebSocket (headless shell), path `/ws`. The first client message authenticates
 * (`{type: 'auth', token}`, within 5 s); then requests `{id, method, args}` get responses
 * `{id, ok, data | error}`, and events arrive as `{type: 'event', event}`.
 */
export const WS_PATH = '/ws'
export const WS_AUTH_TIMEOUT_MS = 5000
/** Close codes: the token was missing or wrong; the message was not a request. */
export const WS_CLOSE_UNAUTHORIZED = 4401
export const WS_CLOSE_BAD_MESSAGE = 4400
export type WsClientMessage = { type: 'auth'; token: string } | { id: number; method: MethodName; args: unknown }
export type WsServerMessage =
  | { type: 'ready'; shell: 'headless' }
  | { id: number; ok: true; data: unknown }
  | { id: number; ok: false; error: string }
  | { type: 'event'; event: ConsoleEvent }
