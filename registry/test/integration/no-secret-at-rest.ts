import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TestGateway } from './harness.ts';

/**
 * Asserts that no value of `secrets` is in clear where a gateway writes: the nginx config it
 * rendered, its audit log, the registry's log lines (`log`), and every file of the state folder
 * (the sealed vault's included). `what` names the kind of secret in the failure.
 */
export async function assertNoSecretAtRest(gw: TestGateway, secrets: readonly string[], log: string, what: string): Promise<void> {
  const check = (text: string, where: string) => {
    for (const secret of secrets) assert.ok(!text.includes(secret), `${where} holds ${what}`);
  };
  await gw.gateway.audit.flush();
  check(readFileSync(join(gw.gateway.runtimeDir, 'nginx.conf'), 'utf8'), 'nginx.conf');
  check(readFileSync(gw.gateway.auditFile, 'utf8'), 'the audit log');
  check(log, 'the registry log');
  for (const name of readdirSync(gw.stateDir, { recursive: true, encoding: 'utf8' })) {
    const file = join(gw.stateDir, name);
    const stat = statSync(file);
    if (stat.isFile() && stat.size < 4_000_000) check(readFileSync(file, 'latin1'), file);
  }
}
