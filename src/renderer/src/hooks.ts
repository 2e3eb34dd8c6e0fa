import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react'
import type { ConsoleApi, ConsoleEvent } from '../../shared/contracts/console-api'
import { errorMessage } from '../../shared/errors'
import type { Connection } from './api'

export const ConnectionContext = createContext<Connection | null>(null)

export function useApi(): ConsoleApi {
  const c = useContext(ConnectionContext)
  if (!c) throw new Error('no console connection')
  return c.api
}

/** Calls `listener` for every console event while mounted. */
export function useConsoleEvents(listener: (e: ConsoleEvent) => void): void {
  const api = useApi()
  const ref = useRef(listener)
  ref.current = listener
  useEffect(() => api.onEvent((e) => ref.current(e)), [api])
}

export interface Query<T> {
  data: T | undefined
  error: string | null
  loading: boolean
  reload: () => void
}

/**
 * Loads `fn()` when `key` changes, and again when an event matches `refreshOn` (coalesced: at
 * most one reload in flight, one queued). Keeps the previous data while reloading.
 */
export function useQuery<T>(fn: (() => Promise<T>) | null, key: string, refreshOn?: (e: ConsoleEvent) => boolean): Query<T> {
  const [data, setData] = useState<T | undefined>(undefined)
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState<boolean>(!!fn)
  const fnRef = useRef(fn)
  fnRef.current = fn
  const inFlight = useRef(false)
  const queued = useRef(false)
  const gen = useRef(0)

  const run = useCallback(() => {
    const f = fnRef.current
    if (!f) return
    if (inFlight.current) {
      queued.current = true
      return
    }
    inFlight.current = true
    const mine = gen.current
    setLoading(true)
    f()
      .then(
        (d) => {
          if (mine !== gen.current) return
          setData(d)
          setError(null)
        },
        (err: unknown) => {
          if (mine !== gen.current) return
          setError(errorMessage(err))
        }
      )
      .finally(() => {
        inFlight.current = false
        if (mine === gen.current) setLoading(false)
        if (queued.current) {
          queued.current = false
          run()
        }
      })
  }, [])

  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` names what `fn` loads; a new key must reload even though the effect reads `fn` through a ref
  useEffect(() => {
    gen.current++
    inFlight.current = false
    queued.current = false
    setData(undefined)
    setError(null)
    if (fnRef.current) run()
    else setLoading(false)
  }, [key, run])

  const refreshRef = useRef(refreshOn)
  refreshRef.current = refreshOn
  useConsoleEvents((e) => {
    if (refreshRef.current?.(e)) run()
  })
  return { data, error, loading, reload: run }
}
