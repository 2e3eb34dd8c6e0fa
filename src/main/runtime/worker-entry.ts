/**
 * Where a worker thread's code is: beside the running module when built (out/main/<name>.js, or one
 * level above a shared chunk), or the .ts source under tsx/vitest (the worker registers tsx's loader
 * first). Each worker is its own entry in electron.vite.config.ts.
 */
import { existsSync } from 'node:fs'

export function workerEntry(name: 'ort-worker' | 'admin-worker', from: string): URL | string {
  if (from.endsWith('.ts')) {
    const src = new URL(`./${name}.ts`, from).href
    return `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(src)}) })`
  }
  for (const rel of [`./${name}.js`, `../${name}.js`]) {
    const built = new URL(rel, from)
    if (existsSync(built)) return built
  }
  throw new Error(`worker ${name}.js not found near ${from}`)
}
