/** HTTP statuses come from an error's class, never from its wording. */
import { describe, expect, it } from 'vitest'
import { httpStatusOf } from '../../../src/main/shell/http-server.js'
import { FieldError, TooLargeError, UserError, flagOf } from '../../../src/shared/errors.js'

describe('httpStatusOf', () => {
  it('maps a size past a cap to 413, another user error to 400, anything else to 500, whatever the message says', () => {
    expect(httpStatusOf(new TooLargeError('upload: a.onnx is over the 1 MiB upload cap'))).toBe(413)
    expect(httpStatusOf(new TooLargeError('too big'))).toBe(413)
    expect(httpStatusOf(new UserError('upload: a.onnx is over the 1 MiB upload cap'))).toBe(400) // the wording alone decides nothing
    expect(httpStatusOf(new UserError('unknown agent "x"'))).toBe(400)
    expect(httpStatusOf(new Error('over the cap'))).toBe(500)
    expect(httpStatusOf('a string')).toBe(500)
  })
})

describe('FieldError', () => {
  it('names fields as fields in its message (the API, the pages) and as flags where the CLI renders it', () => {
    const e = new FieldError('import: {images} and {labels} go together; or {imageDir}')
    expect(e.message).toBe('import: images and labels go together; or imageDir')
    expect(e.render(flagOf)).toBe('import: --images and --labels go together; or --image-dir')
    expect(httpStatusOf(e)).toBe(400)
  })
})
