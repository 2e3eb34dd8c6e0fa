/**
 * The process-level guard of both shells: an exception or rejection that no handler caught is
 * logged (once per burst) and the console keeps running — every input path has its own error
 * handling (DESIGN.md, "Hardening"); this is the net under it, so that one missed path costs a
 * log line, not the console, its devices and its running campaign.
 */
import type { Logger } from 'pino'
import { LogLimiter } from '../console/broker/log-limit.js'

export function installProcessGuard(log: Logger): () => void {
  const limiter = new LogLimiter(log)
  const onException = (err: Error) => {
    limiter.error(`uncaught:${err.message}`, { err: err.stack ?? String(err) }, 'uncaught exception (the console keeps running)')
  }
  const onRejection = (reason: unknown) => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)
    limiter.error(`unhandled:${text.split('\n')[0]}`, { err: text }, 'unhandled promise rejection (the console keeps running)')
  }
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
    limiter.close()
  }
}
