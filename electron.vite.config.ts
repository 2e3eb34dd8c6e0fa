import { resolve } from 'node:path'
import { defineConfig } from 'electron-vite'
import react from '@vitejs/plugin-react'

// Three builds, as in electron-vite's react-ts template. The main build has two entries: the
// Electron entry (the only main-process module that imports `electron`) and the `edgent` CLI,
// which runs the same console core under plain Node (the headless shell).
export default defineConfig({
  main: {
    build: {
      rollupOptions: {
        input: {
          index: resolve(__dirname, 'src/main/index.ts'),
          cli: resolve(__dirname, 'src/main/cli/index.ts'),
          // The executor starts this file as a worker thread: it must be its own output file.
          'ort-worker': resolve(__dirname, 'src/main/runtime/ort-worker.ts'),
          // Admin jobs (graph analysis of an import, image decoding) run in this one, off the broker's thread.
          'admin-worker': resolve(__dirname, 'src/main/models/admin-worker.ts'),
          // The device agent, built beside the worker it shares (pi-agent/bin/edgent-agent.js runs it).
          agent: resolve(__dirname, 'pi-agent/src/cli.ts')
        }
      }
    }
  },
  preload: {
    build: {
      rollupOptions: {
        input: { index: resolve(__dirname, 'src/preload/index.ts') },
        // A sandboxed renderer's preload must be CommonJS (Electron does not load ESM preloads there).
        output: { format: 'cjs', entryFileNames: '[name].cjs' }
      }
    }
  },
  renderer: {
    root: resolve(__dirname, 'src/renderer'),
    build: {
      rollupOptions: {
        input: { index: resolve(__dirname, 'src/renderer/index.html') }
      }
    },
    plugins: [react()]
  }
})
