/**
 * The layering of the code, checked by dependency-cruiser in `npm test` (`npm run lint:deps`).
 * docs/DESIGN.md, "Layers", explains it. From the bottom:
 *
 *   src/shared          pure TypeScript (no Node, no DOM): contracts, planner, latency, codecs
 *   src/main/calibration  the calibration math (fits, forests, grids, scoring, link-stage fits): it
 *                       imports src/shared and its libraries only, so that it is pure and testable alone
 *   src/main/runtime    Node code both sides run: files, ORT executor, layer timers
 *   src/main/models     the model library: shipped and imported models, import (graph analysis, manifest)
 *   src/main/store      the SQLite store: the only module with SQL
 *   src/main/console    the console core: lifecycle modules and their wiring; campaigns/ runs the
 *                       campaign kinds over the console's modules
 *   src/main/testbed    the paper-reproduction testbed (a console in a network namespace setup)
 *   src/main/shell      the headless shell: HTTP/WebSocket server, control file, stack
 *   src/main/cli, src/main/index.ts + ipc.ts (Electron)   the shells' entries
 *
 * A module imports only from its own layer and the layers below. The Pi agent (pi-agent/src)
 * imports src/shared and src/main/runtime only; the renderer and the preload import src/shared only.
 */
const above = (layers) => `^src/main/(${layers.join('|')})(/|\\.ts$)`

/** Each layer with the layers above it (which it must not import). */
const LAYERS = [
  ['runtime', ['models', 'store', 'console', 'testbed', 'shell', 'cli', 'index', 'ipc']],
  ['models', ['store', 'console', 'testbed', 'shell', 'cli', 'index', 'ipc']],
  ['store', ['console', 'testbed', 'shell', 'cli', 'index', 'ipc']],
  ['console', ['testbed', 'shell', 'cli', 'index', 'ipc']],
  ['testbed', ['shell', 'cli', 'index', 'ipc']],
  ['shell', ['testbed', 'cli', 'index', 'ipc']],
  ['cli', ['index', 'ipc']]
]

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import circles make start-up order and tests fragile; break the circle by moving the shared piece down a layer.',
      from: {},
      to: { circular: true }
    },
    {
      name: 'shared-is-pure',
      severity: 'error',
      comment: 'src/shared is imported by the renderer, the preload and the Pi agent: no Node built-ins, nothing from the other trees.',
      from: { path: '^src/shared/' },
      to: { pathNot: '^src/shared/', dependencyTypesNot: ['npm', 'npm-dev'] }
    },
    ...LAYERS.map(([layer, higher]) => ({
      name: `${layer}-imports-no-higher-layer`,
      severity: 'error',
      comment: `src/main/${layer} may import only its own layer and the layers below it (see the header of this file).`,
      from: { path: `^src/main/${layer}/` },
      to: { path: above(higher) }
    })),
    {
      name: 'calibration-is-pure-math',
      severity: 'error',
      comment:
        'src/main/calibration is the calibration math (fits, forests, grids, scoring): it imports src/shared and its npm libraries only — never the console, the store or the runtime. Orchestration belongs in src/main/console/campaigns.',
      from: { path: '^src/main/calibration/' },
      to: { path: '^(src|pi-agent)/', pathNot: '^src/(shared|main/calibration)/' }
    },
    {
      name: 'agent-imports-shared-and-runtime-only',
      severity: 'error',
      comment: 'The Pi agent is packed on its own (npm run pack:agent): it may import src/shared and src/main/runtime only.',
      from: { path: '^pi-agent/' },
      to: { path: '^src/', pathNot: '^src/(shared|main/runtime)/' }
    },
    {
      name: 'renderer-imports-shared-only',
      severity: 'error',
      comment: 'The renderer runs in a sandboxed page: it talks to the console only through ConsoleApi (src/shared).',
      from: { path: '^src/(renderer|preload)/' },
      to: { path: '^(src/main|pi-agent)/' }
    },
    {
      name: 'electron-only-in-the-shell-entry-and-preload',
      severity: 'error',
      comment: 'Only the Electron entry (src/main/index.ts) and the preload import electron, so everything else runs (and is tested) under plain Node.',
      from: { pathNot: '^src/(main/index\\.ts|preload/)' },
      to: { path: '^electron$|node_modules/electron/' }
    },
    {
      name: 'sql-only-in-the-store',
      severity: 'error',
      comment: 'One module owns the database (src/main/store): nobody else opens it.',
      from: { pathNot: '^src/main/store/' },
      to: { path: 'node_modules/better-sqlite3/' }
    },
    {
      name: 'onnxruntime-only-in-ort',
      severity: 'error',
      comment: 'Exactly one module imports onnxruntime (src/main/runtime/ort.ts), inside the worker.',
      from: { pathNot: '^src/main/runtime/ort\\.ts$' },
      to: { path: 'node_modules/onnxruntime-node/' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(out|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.node.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.tsx', '.js', '.mjs', '.cjs', '.json']
    }
  }
}
