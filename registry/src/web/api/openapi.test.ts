import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openApiDocument } from './openapi.ts';
import { API_PREFIX, API_ROUTES } from './routes.ts';

const doc = openApiDocument(API_ROUTES, 'https://mcp.example.com') as any;

test('every route of the table is in the document, with its operationId, and nothing else is', () => {
  const documented = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => `${method} ${path} ${op.operationId}`),
  );
  const routes = API_ROUTES.map((r) => `${r.method} ${API_PREFIX}${r.path.replace(/:(\w+)/g, '{$1}')} ${r.operationId}`);
  assert.deepEqual(documented.sort(), routes.sort());
  assert.equal(new Set(API_ROUTES.map((r) => r.operationId)).size, API_ROUTES.length, 'operationIds are unique');
});

test('every $ref points at a schema in components', () => {
  const refs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) k === '$ref' ? refs.push(String(x)) : walk(x);
  };
  walk(doc);
  assert.ok(refs.length > 10);
  for (const ref of refs) {
    assert.match(ref, /^#\/components\/schemas\//);
    assert.ok(doc.components.schemas[ref.slice('#/components/schemas/'.length)], `${ref} does not resolve`);
  }
  assert.equal(JSON.stringify(doc).includes('$defs'), false);
});

test('request bodies come from the validating schemas: register requires name, url and transports', () => {
  const body = doc.paths[`${API_PREFIX}/servers`].post.requestBody.content['application/json'].schema;
  const schema = body.$ref ? doc.components.schemas[body.$ref.split('/').pop()] : body;
  assert.deepEqual([...schema.required].sort(), ['name', 'transports', 'url']);
  assert.equal(schema.additionalProperties, false, 'unknown keys are refused, and the document says so');
  assert.ok(schema.properties.name.pattern, 'the server name pattern is documented');
  const params = doc.paths[`${API_PREFIX}/servers/{name}`].put.parameters.map((p: any) => `${p.in}:${p.name}`);
  assert.deepEqual(params.sort(), ['header:If-Match', 'path:name']);
});

test('every route documents 401 and its error statuses with the Error schema', () => {
  for (const route of API_ROUTES) {
    const op = doc.paths[`${API_PREFIX}${route.path.replace(/:(\w+)/g, '{$1}')}`][route.method];
    for (const status of [401, ...route.errors]) {
      assert.equal(op.responses[String(status)].content['application/json'].schema.$ref, '#/components/schemas/Error', `${route.operationId} ${status}`);
    }
    assert.ok(op.responses[String(route.status)], `${route.operationId} documents its success status`);
  }
});

test('docs/registry-api.md lists every endpoint', () => {
  const text = readFileSync(join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'registry-api.md'), 'utf8');
  for (const route of API_ROUTES) {
    const path = `${API_PREFIX}${route.path.replace(/:(\w+)/g, '{$1}')}`;
    assert.ok(
      new RegExp(`\\| ${route.method.toUpperCase()} \\| \`${path.replace(/[{}]/g, '\\$&')}[\`?]`).test(text),
      `docs/registry-api.md lacks ${route.method.toUpperCase()} ${path}`,
    );
  }
});
