/**
 * The model this console serves: its manifest, opened in the edge runtime, and its shipped samples
 * (the input that per-layer timing runs on).
 */
import type { Manifest } from '../../shared/manifest.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { loadManifest, readShippedSamples } from '../runtime/files.js'

export class ServedModel {
  private m: Manifest | null = null
  private pixels: Uint8Array | null = null

  constructor(
    private readonly modelDir: string,
    private readonly executor: OrtExecutor
  ) {}

  async start(): Promise<void> {
    const loaded = loadManifest(this.modelDir)
    await this.executor.openModel(loaded.dir)
    const samples = readShippedSamples(loaded)
    this.pixels = samples.images.subarray(0, samples.imageElements)
    this.m = loaded.manifest
  }

  get manifest(): Manifest {
    if (!this.m) throw new Error('the served model is not loaded yet')
    return this.m
  }

  /** One shipped sample's raw pixels: the input per-layer timing runs on. */
  get samplePixels(): Uint8Array {
    if (!this.pixels) throw new Error('the served model is not loaded yet')
    return this.pixels
  }
}
