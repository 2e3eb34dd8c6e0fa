/** Text as it is shown (src/shared/text.ts): numbers as a person reads them, a device's emulation in one line. */
import { describe, expect, it } from 'vitest'
import { emulationText, safeText, shortNumber } from '../../src/shared/text.js'

describe('shown text', () => {
  it('prints a factor as 6.67, never 6.666666666666667, and a device’s emulation in one line', () => {
    expect(shortNumber(6.666666666666667)).toBe('6.67')
    expect(shortNumber(1000)).toBe('1000')
    expect(shortNumber(0.15)).toBe('0.15')
    expect(
      emulationText({
        kind: 'local emulated device',
        cpu: { method: 'slowdown', factor: 6.666666666666667 },
        uplink: { method: 'application-level rate limit', kbps: 1000 }
      })
    ).toBe('cpu: slowdown (factor 6.67) · uplink: application-level rate limit (kbps 1000)')
    expect(emulationText(undefined)).toBe('none announced (a real device)')
    expect(safeText('a\u202eb\u0000')).toBe('a\uFFFDb\uFFFD')
  })
})
