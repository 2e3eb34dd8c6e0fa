import { PAPER_2018, REGRESSION_KEYS } from '../../shared/latency'

/** The console's pages land with the console issue; this shell shows what the planner core knows. */
export function App(): React.JSX.Element {
  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', padding: 24 }}>
      <h1>Edgent Console</h1>
      <p>Built-in latency profile: {PAPER_2018.name}</p>
      <p>Layer types with regressions: {REGRESSION_KEYS.join(', ')}</p>
    </main>
  )
}
