/**
 * The layering rules (.dependency-cruiser.cjs, docs/DESIGN.md "Layers") are a check, not a hope:
 * `npm test` runs them on the tree (`npm run lint:deps`), and here they refuse a tree with a
 * deliberate upward import, a Node built-in in src/shared, an agent importing the console, calibration
 * math importing the console, store or runtime, and the database or electron imported where they must not be.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { packageRoot } from '../src/main/runtime/paths.js'

const root = packageRoot()
const depcruise = join(root, 'node_modules', '.bin', 'depcruise')

/** A throw-away tree of .js files (so no tsconfig is needed) under the project's folder names. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgent-layers-'))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  // The project's rules, without its tsconfig (the tree is plain JavaScript).
  writeFileSync(
    join(dir, '.dependency-cruiser.cjs'),
    `const c = require(${JSON.stringify(join(root, '.dependency-cruiser.cjs'))})\nmodule.exports = { ...c, options: { ...c.options, tsConfig: undefined } }\n`
  )
  mkdirSync(join(dir, 'node_modules'), { recursive: true })
  for (const pkg of ['better-sqlite3', 'electron']) {
    mkdirSync(join(dir, 'node_modules', pkg), { recursive: true })
    writeFileSync(join(dir, 'node_modules', pkg, 'package.json'), JSON.stringify({ name: pkg, version: '1.0.0', main: 'index.js' }))
    writeFileSync(join(dir, 'node_modules', pkg, 'index.js'), 'module.exports = {}\n')
  }
  return dir
}

function cruise(dir: string): { code: number; out: string } {
  const roots = ['src', 'pi-agent'].filter((d) => existsSync(join(dir, d)))
  const r = spawnSync(depcruise, [...roots, '--config', '.dependency-cruiser.cjs'], { cwd: dir, encoding: 'utf8' })
  return { code: r.status ?? -1, out: r.stdout + r.stderr }
}

describe('layering rules', () => {
  it('pass on the project itself', () => {
    const out = execFileSync(depcruise, ['src', 'pi-agent/src', '--config', '.dependency-cruiser.cjs'], { cwd: root, encoding: 'utf8' })
    expect(out).toMatch(/no dependency violations found/)
  })

  it('pass on a tree that only imports downward', () => {
    const r = cruise(
      tree({ 'src/main/console/a.js': "import { b } from '../runtime/b.js'\nexport const a = b\n", 'src/main/runtime/b.js': 'export const b = 1\n' })
    )
    expect(r.out).toMatch(/no dependency violations found/)
    expect(r.code).toBe(0)
  })

  it('refuse an upward import, naming the rule and both files', () => {
    const r = cruise(
      tree({
        'src/main/runtime/timer.js': "import { link } from '../console/link.js'\nexport const t = link\n",
        'src/main/console/link.js': 'export const link = 1\n'
      })
    )
    expect(r.code).not.toBe(0)
    expect(r.out).toContain('error runtime-imports-no-higher-layer: src/main/runtime/timer.js → src/main/console/link.js')
  })

  it('refuse calibration math that reaches into the console, the store or the runtime, and pass it on src/shared and its libraries', () => {
    const bad = cruise(
      tree({
        'src/main/calibration/fit.js':
          "import { store } from '../store/store.js'\nimport { x } from '../runtime/x.js'\nimport { c } from '../console/c.js'\nexport const f = [store, x, c]\n",
        'src/main/store/store.js': 'export const store = 1\n',
        'src/main/runtime/x.js': 'export const x = 1\n',
        'src/main/console/c.js': 'export const c = 1\n'
      })
    )
    expect(bad.code).not.toBe(0)
    for (const to of ['src/main/store/store.js', 'src/main/runtime/x.js', 'src/main/console/c.js'])
      expect(bad.out).toContain(`error calibration-is-pure-math: src/main/calibration/fit.js → ${to}`)
    const good = cruise(
      tree({
        'src/main/calibration/fit.js': "import { l } from '../../shared/latency.js'\nimport { g } from './grid.js'\nexport const f = [l, g]\n",
        'src/main/calibration/grid.js': 'export const g = 1\n',
        'src/shared/algorithms/latency.js': 'export const l = 1\n'
      })
    )
    expect(good.out).toMatch(/no dependency violations found/)
  })

  it('refuse a circle, Node in src/shared, the agent importing the console, SQL outside the store and electron outside the entry', () => {
    const r = cruise(
      tree({
        'src/main/console/a.js': "import { b } from './b.js'\nexport const a = b\n",
        'src/main/console/b.js': "import { a } from './a.js'\nexport const b = a\n",
        'src/shared/pure.js': "import { readFileSync } from 'node:fs'\nexport const p = readFileSync\n",
        'pi-agent/src/agent.js': "import { a } from '../../src/main/console/a.js'\nexport const g = a\n",
        'src/main/console/db.js': "import Database from 'better-sqlite3'\nexport const d = Database\n",
        'src/main/cli/win.js': "import { app } from 'electron'\nexport const w = app\n"
      })
    )
    expect(r.code).not.toBe(0)
    for (const rule of [
      'no-circular',
      'shared-is-pure',
      'agent-imports-shared-and-runtime-only',
      'sql-only-in-the-store',
      'electron-only-in-the-shell-entry-and-preload'
    ])
      expect(r.out, rule).toContain(`error ${rule}:`)
  })
})
