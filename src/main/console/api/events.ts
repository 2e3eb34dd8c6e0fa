/** How the console's modules raise the console's events (src/shared/contracts/console-api.ts, ConsoleEvents). */
import type { ConsoleEvents } from '../../../shared/contracts/console-api.js'

/** Observers of raw activation tensors (the arm64 conformance test compares them across agents). */
export interface FrameEvent {
  agentId: string
  header: unknown
  dims: number[]
  data: Float32Array
}

export interface InternalEvents extends ConsoleEvents {
  frame: FrameEvent
}

export type Emit = <E extends keyof InternalEvents>(event: E, data: InternalEvents[E]) => void
