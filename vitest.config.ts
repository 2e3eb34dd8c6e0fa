import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/arm64/**', '**/node_modules/**'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start brokers, workers and child processes: run files one at a time on a
    // two-core machine so timings inside a test are not fought over.
    fileParallelism: false,
    reporters: ['default']
  }
})
