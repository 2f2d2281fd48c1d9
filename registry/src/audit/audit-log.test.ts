import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLog } from './audit-log.ts';

test('writes one JSON line per decision with a time, and nothing else', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'mcpgw-audit-')), 'sub', 'audit.log');
  const audit = createAuditLog(file);
  audit.record({ event: 'access', requestId: 'r1', user: 'alice', server: 'fininfo', transport: 'sse', method: 'tools/call', tool: 'print_stuff', messages: 1, decision: 'deny', status: 403, missingScope: 'mcp:server:fininfo:tool:print_stuff:execute', reason: 'scope-missing' });
  audit.record({ event: 'change', user: 'operator', server: 'fininfo', action: 'disable' });
  await audit.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  assert.match(String(lines[0]?.['time']), /^\d{4}-\d\d-\d\dT/);
  assert.equal(lines[0]?.['missingScope'], 'mcp:server:fininfo:tool:print_stuff:execute');
  assert.equal(lines[1]?.['action'], 'disable');
  assert.deepEqual(Object.keys(lines[0] ?? {}).sort(), ['decision', 'event', 'messages', 'method', 'missingScope', 'reason', 'requestId', 'server', 'status', 'time', 'tool', 'transport', 'user']);
});
