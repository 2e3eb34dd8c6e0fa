/**
 * No file of the machine is readable through a model (issue 30, item 1). An ONNX tensor may name
 * "external data": a file that onnxruntime, given the model's bytes, reads relative to the working
 * directory — the console's API token or a device's credentials would come back as weights through
 * the scores. Such models are refused at import, and the runtime (the console's and every agent's)
 * never hands them to onnxruntime.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  ModelProtoSchema,
  NodeProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation
} from 'onnx-buf'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importModel, listModels } from '../../../src/main/models/library.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { residual } from '../../fixtures/dag.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'edgent-extdata-'))
const entries = (location: string, length: number) =>
  [
    ['location', location],
    ['offset', '0'],
    ['length', String(length)]
  ].map(([key, value]) => create(StringStringEntryProtoSchema, { key: key!, value: value! }))

/** The residual fixture with its last initializer (the classifier's bias, 10 floats) read from `location`. */
function externalInitializer(location: string): Uint8Array {
  const m = fromBinary(ModelProtoSchema, residual().bytes)
  const t = m.graph!.initializer.at(-1)!
  const bytes = t.rawData.length || t.floatData.length * 4
  t.rawData = new Uint8Array(0)
  t.floatData = []
  t.dataLocation = TensorProto_DataLocation.EXTERNAL
  t.externalData = entries(location, bytes)
  return toBinary(ModelProtoSchema, m)
}

/** The residual fixture with a Constant node whose tensor attribute names external data (unused by the outputs). */
function externalConstant(location: string): Uint8Array {
  const m = fromBinary(ModelProtoSchema, residual().bytes)
  const t = structuredClone(m.graph!.initializer.at(-1)!)
  t.name = 'leak'
  t.rawData = new Uint8Array(0)
  t.floatData = []
  t.dataLocation = TensorProto_DataLocation.EXTERNAL
  t.externalData = entries(location, 40)
  m.graph!.node.push(
    create(NodeProtoSchema, {
      opType: 'Constant',
      name: 'leaky-constant',
      output: ['leak_out'],
      attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t })]
    })
  )
  return toBinary(ModelProtoSchema, m)
}

describe('models that name external data', () => {
  let ex: OrtExecutor
  beforeAll(async () => {
    ex = new OrtExecutor({ workers: 1 })
    await ex.start()
  })
  afterAll(() => ex.stop())

  it('are refused at import, naming the tensor and the file, and nothing is written', async () => {
    // package.json is in the working directory the tests run in: onnxruntime would read it as the bias.
    expect(existsSync('package.json')).toBe(true)
    for (const [bytes, what] of [
      [externalInitializer('package.json'), /1 tensor keeps its data in another file \(ONNX external data: .* → "package\.json"\)/],
      [externalConstant('package.json'), /leak → "package\.json"/]
    ] as const) {
      const dataDir = tmp()
      const file = join(tmp(), 'model.onnx')
      writeFileSync(file, bytes)
      await expect(importModel({ file, dataDir, accuracy: [0.5] }, ex)).rejects.toThrow(what)
      expect(listModels(dataDir).filter((m) => m.source !== 'shipped')).toEqual([])
      expect(existsSync(join(dataDir, 'models')) ? readdirSync(join(dataDir, 'models')) : []).toEqual([])
    }
  })

  it('are never handed to onnxruntime by the runtime, as a device loads a model it was sent', async () => {
    // A clean import, then its ONNX file replaced (and the manifest's checksum with it), as a cache an attacker filled.
    const dataDir = tmp()
    const file = join(tmp(), 'residual.onnx')
    writeFileSync(file, residual().bytes)
    const r = await importModel({ file, dataDir, accuracy: [0.5] }, ex)
    const tainted = externalInitializer('package.json')
    writeFileSync(join(r.dir, 'model.onnx'), tainted)
    const manifestPath = join(r.dir, 'manifest.json')
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>
    writeFileSync(manifestPath, JSON.stringify({ ...manifest, onnxBytes: tainted.length, sha256: createHash('sha256').update(tainted).digest('hex') }))
    await expect(ex.openModel(r.dir)).rejects.toThrow(/keeps its data in another file .*"package\.json"/)
    // and the probe the import runs refuses the bytes on its own
    await expect(ex.probeOutputs(tainted, 'probe', new Float32Array(3 * 16 * 16), [1, 3, 16, 16])).rejects.toThrow(/external data/)
  })
})
