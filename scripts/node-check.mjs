// `npm ci`'s first step: on a Node older than the supported one, one line saying what happens next
// (npm's own EBADENGINE warnings are many and easy to miss). Runs on any Node. npm 11 hides the
// output of install scripts, so the line goes to the terminal itself when there is one (else to
// stderr, which npm shows when the install fails).
import { writeFileSync } from 'node:fs'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  const line = `edgent: Node ${process.version} is not supported (22.12 or later, 24 LTS recommended). Installing anyway: \`npm start\` and \`npm test\` fetch and use Node 24 themselves (scripts/ensure-node.sh); the EBADENGINE warnings above are this.\n`
  try {
    writeFileSync('/dev/tty', line)
  } catch {
    process.stderr.write(line)
  }
}
