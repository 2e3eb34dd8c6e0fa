import { defineConfig } from 'vitest/config'

/** `npm run test:arm64`: the agent under arm64 emulation (slow; kept out of the unit run). */
export default defineConfig({
  test: {
    include: ['test/arm64/**/*.test.ts'],
    environment: 'node',
    testTimeout: 600_000,
    hookTimeout: 300_000,
    fileParallelism: false
  }
})
