/**
 * The console API as an OpenAPI 3.1 document, generated from the zod schemas the console validates
 * every call with (api-schemas.ts): what a notebook or another client may send is exactly what is
 * accepted. Served at `GET /openapi.json` by the headless shell. Results are JSON (`{ok, data}`);
 * their shapes are the TypeScript types of src/shared/contracts/console-api.ts.
 */
import { z } from 'zod'
import { METHOD_NAMES } from '../../../shared/contracts/console-api.js'
import { API_SCHEMAS } from './api-schemas.js'

const answer = (ok: boolean) => ({
  type: 'object',
  required: ok ? ['ok', 'data'] : ['ok', 'error'],
  properties: ok ? { ok: { const: true }, data: {} } : { ok: { const: false }, error: { type: 'string', description: 'one line naming what was wrong' } }
})

export function openApiDocument(version: string, server = 'http://127.0.0.1:8080'): Record<string, unknown> {
  const paths: Record<string, unknown> = {}
  for (const method of METHOD_NAMES) {
    const { $schema: _s, ...schema } = z.toJSONSchema(API_SCHEMAS[method] as z.ZodType, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>
    const error = (description: string) => ({ description, content: { 'application/json': { schema: answer(false) } } })
    paths[`/api/${method}`] = {
      post: {
        operationId: method,
        requestBody: { required: false, content: { 'application/json': { schema } } },
        responses: {
          200: { description: `the result of ${method}`, content: { 'application/json': { schema: answer(true) } } },
          400: error('arguments or a request the console refuses, named'),
          401: error('missing or wrong token'),
          404: error('unknown method'),
          413: error('a body or a file past its cap'),
          500: error('an internal error')
        }
      }
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Edgent Console API',
      version,
      description: 'POST /api/<method> with a JSON body of its arguments and `Authorization: Bearer <token>` (the token is in <data dir>/console.json).'
    },
    servers: [{ url: server }],
    components: { securitySchemes: { token: { type: 'http', scheme: 'bearer' } } },
    security: [{ token: [] }],
    paths
  }
}
