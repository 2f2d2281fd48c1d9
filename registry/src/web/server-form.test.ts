import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverDefinitionSchema } from '../catalog/server-definition.ts';
import { parseDefinition } from './registry-actions.ts';
import { definitionInputFromForm, formErrors, formFromBody, formFromDefinition } from './server-form.ts';
import { GatewayError } from '../errors.ts';

test('a definition survives the round trip through the form', () => {
  const def = serverDefinitionSchema.parse({
    name: 'fininfo',
    description: 'Market data',
    url: 'http://127.0.0.1:8002',
    transports: { 'streamable-http': '/mcp', sse: '/sse' },
    enabled: true,
    tags: ['finance', 'example'],
    tools: [
      { name: 'get_stock_aggregates', description: 'Daily aggregates: open, close' },
      { name: 'print_stuff', description: '' },
    ],
  });
  const form = formFromDefinition(def);
  assert.equal(form.tools, 'get_stock_aggregates: Daily aggregates: open, close\nprint_stuff');
  assert.deepEqual(parseDefinition(definitionInputFromForm(form)), def);
});

test('the posted form: trimmed text, an unchecked box is false, empty transports are left out', () => {
  const form = formFromBody({ name: ' a ', url: 'http://h:1', streamable: '', sse: '/sse', tags: ' x, ,y ', tools: '\n t1 \r\n', _csrf: 'z' });
  assert.equal(form.name, 'a');
  assert.equal(form.enabled, false);
  const input = definitionInputFromForm(form);
  assert.deepEqual(input.transports, { sse: '/sse' });
  assert.deepEqual(input.tags, ['x', 'y']);
  assert.deepEqual(input.tools, [{ name: 't1', description: '' }]);
  assert.equal(formFromBody({ enabled: 'on' }).enabled, true);
  assert.equal(formFromBody({ name: ['a', 'b'] }).name, '', 'a repeated field is not a string and is ignored');
});

test('schema problems land next to the form field they belong to', () => {
  const input = definitionInputFromForm(
    formFromBody({ name: 'Bad Name', url: 'http://h/x?y', streamable: '', sse: '', tags: 'ok, bad;tag', tools: 'fine\nnot ok: x' }),
  );
  let err: unknown;
  try {
    parseDefinition(input);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof GatewayError && err.code === 'REQUEST_INVALID' && err.fields);
  const errors = formErrors(err.fields);
  assert.match(errors['name'] ?? '', /server name must match/);
  assert.match(errors['url'] ?? '', /url must be/);
  assert.match(errors['streamable'] ?? '', /at least one transport/);
  assert.match(errors['tags'] ?? '', /^tag 2: /);
  assert.match(errors['tools'] ?? '', /^line 2 \(name\): tool name/);
  assert.deepEqual(formErrors([{ field: 'nonsense', message: 'm' }]), { form: 'm' });
});
