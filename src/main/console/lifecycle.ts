/**
 * The console's one lifecycle: every module implements `start()`/`stop()` and is registered, by
 * name, in one ordered list (console.ts). Started in order; stopped in reverse, each awaited, by one
 * loop — a stop that fails is logged and the others still stop. A start that fails stops what had
 * started, in reverse, and rethrows.
 */
import type { Logger } from 'pino'
import { errorMessage } from '../../shared/errors.js'

export interface ConsoleModule {
  start(): void | Promise<void>
  stop(): void | Promise<void>
}

export interface Registered {
  name: string
  module: ConsoleModule
}

export class Lifecycle {
  private started: Registered[] = []

  constructor(
    private readonly modules: readonly Registered[],
    private readonly log: Logger
  ) {}

  /** The registered names in start order (the wiring's table of contents). */
  get names(): string[] {
    return this.modules.map((m) => m.name)
  }

  async start(): Promise<void> {
    for (const m of this.modules) {
      try {
        await m.module.start()
      } catch (err) {
        await this.stop()
        throw err
      }
      this.started.push(m)
    }
  }

  async stop(): Promise<void> {
    const started = this.started
    this.started = []
    for (const m of [...started].reverse()) {
      try {
        await m.module.stop()
      } catch (err) {
        this.log.error({ module: m.name, err: errorMessage(err) }, 'console module did not stop cleanly')
      }
    }
  }
}
