import assert from 'node:assert/strict';
import { it } from 'node:test';
import { traceIdOf } from './trace-context.ts';

it('takes the trace id of a valid traceparent and nothing from an invalid one', () => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
  assert.equal(traceIdOf(`01-${id}-00f067aa0ba902b7-01-future`), id, 'a later version may add fields');
  for (const bad of [
    undefined,
    '',
    `00-${id}-00f067aa0ba902b7-01-extra`,
    `ff-${id}-00f067aa0ba902b7-01`,
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-${id}-${'0'.repeat(16)}-01`,
    `00-${id.toUpperCase()}-00f067aa0ba902b7-01`,
    `00-${id}-00f067aa0ba902b7`,
    `00-${id}-00f067aa0ba902b7-01\nuser=root`,
    'hello',
  ])
    assert.equal(traceIdOf(bad), undefined, JSON.stringify(bad));
});
