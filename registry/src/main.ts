import { dirname, join } from 'node:path';
import { checkConfiguration } from './check-config.ts';
import { loadConfig } from './config/load.ts';
import { startGateway } from './gateway.ts';
import { DEMO_PASSWORD } from './config/dev-users.ts';
import { DEV_MACHINE_CLIENT_ID, devMachineSecret } from './identity/dev.ts';
import { createLogger } from './log.ts';

// The table of contents: config → logger → gateway (sessions, catalog, IdP, app, nginx) → signals.
const projectRoot = join(dirname(import.meta.filename), '..', '..');
const loaded = loadConfig(process.env, projectRoot);
if (!loaded.ok) {
  process.stderr.write(`invalid configuration:\n${loaded.errors.map((e) => `  ${e}`).join('\n')}\n`);
  process.exit(1);
}
const config = loaded.config;
const log = createLogger(config.logLevel);
for (const warning of config.warnings) log.warn(warning);
if (!config.authEnabled) {
  log.warn('MCP_AUTH_ENABLED=false: EVERY REQUEST IS ALLOWED AS AN ANONYMOUS ADMIN. Never run like this where anyone else can connect.');
}
if (process.argv.includes('--check-config')) {
  const problems = await checkConfiguration(config, log);
  if (problems.length > 0) {
    process.stderr.write(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
    process.exit(1);
  }
  process.stdout.write('configuration is valid: environment, catalog files and the nginx config they render\n');
  process.exit(0);
}

const gateway = await startGateway(config, log).catch((err: unknown) => {
  // Straight to stderr and out: nothing was started, and the logger may not be ready to flush.
  process.stderr.write(
    `cannot start:\n${(err as Error).message
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n')}\n`,
  );
  process.exit(1);
});

const lines = [`MCP Gateway Registry is running: open ${config.gateway.publicUrl}`];
if (config.providerType === 'dev') {
  lines.push('Demo logins (built-in development identity provider):');
  for (const user of config.devUsers) {
    const password = user.username === config.admin.user ? adminPasswordHint() : user.password === DEMO_PASSWORD ? DEMO_PASSWORD : '(from DEV_IDP_USERS_FILE)';
    lines.push(`  ${user.username.padEnd(10)} ${password.padEnd(12)} ${user.description}`);
  }
}
if (config.providerType === 'dev') {
  const secret = process.stdout.isTTY ? devMachineSecret(config.secretKey) : '(derived from SECRET_KEY; run on a terminal to see it)';
  lines.push(
    `Machine client (client credentials at ${config.gateway.publicUrl}/oauth2/token with resource=<MCP URL>, or ${config.gateway.publicUrl}/idp/token): ${DEV_MACHINE_CLIENT_ID} / ${secret}; its scopes come from MCP_AUTH_SCOPE_MAPPING_FILE`,
  );
}
lines.push(`MCP endpoints: ${config.gateway.publicUrl}/api/streamable/<server>  and  ${config.gateway.publicUrl}/api/execute/<server>/sse`);
lines.push(`REST API: ${config.gateway.publicUrl}/api/registry/ (described at ${config.gateway.publicUrl}/api/registry/openapi.json)`);
process.stdout.write(`\n${lines.join('\n')}\n\n`);

/** The generated admin password is shown on a terminal only; where stdout is a log, point at the file. */
function adminPasswordHint(): string {
  if (config.admin.passwordFrom === 'env') return '(ADMIN_PASSWORD)';
  if (process.stdout.isTTY) return config.admin.password;
  if (config.admin.passwordFrom === 'secret-key') return '(derived from SECRET_KEY, the same on every replica: set ADMIN_PASSWORD to choose one)';
  return `(generated: ${join(config.stateDir, 'admin_password')})`;
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  });
}
