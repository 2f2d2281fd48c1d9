import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog } from './catalog/catalog.ts';
import { ScopeMappingSource } from './identity/scope-mapping-source.ts';
import type { Config } from './config/load.ts';
import { definitionPolicy, nginxRenderer } from './gateway.ts';
import type { Logger } from './log.ts';
import { findNginx, NginxController } from './nginx/apply.ts';
import { RouteTable } from './nginx/route.ts';

/**
 * `npm run config:check`: the environment (already validated by the caller), the scope mapping
 * file, every catalog file, and the nginx config they render, tested with `nginx -t` in a scratch folder. Nothing
 * is started and nothing running is touched. Returns the problems, one line each.
 */
export async function checkConfiguration(config: Config, log: Logger): Promise<string[]> {
  const problems: string[] = [];
  try {
    new ScopeMappingSource(config.identity.mappingFile, log);
  } catch (err) {
    problems.push(...(err as Error).message.split('\n'));
  }
  const catalog = await Catalog.open(config.catalogDir, log, definitionPolicy(config)).catch((err: Error) => {
    problems.push(err.message);
    return undefined;
  });
  for (const p of catalog?.problems() ?? []) problems.push(`${join(config.catalogDir, p.file)}: ${p.message}`);
  const nginx = findNginx(config.nginx.bin, config.nginx.njsModule);
  if ('missing' in nginx) return [...problems, nginx.missing];
  const scratch = await mkdtemp(join(tmpdir(), 'mcpgw-check-'));
  try {
    // The cache in the scratch folder: the config is checked, the operator's CHECK_CACHE_DIR is not touched.
    const { seconds } = config.nginx.checkCache;
    const cache = seconds > 0 ? { dir: join(scratch, 'check-cache'), generationFile: join(scratch, 'check-generation'), seconds } : undefined;
    const render = nginxRenderer(config, scratch, 1, nginx.njsModule, cache);
    // The upstream blocks nginx would start with; servers the gateway could not route are problems too.
    const routes = catalog === undefined ? undefined : new RouteTable({ catalog, log });
    const upstreams = (await routes?.start()) ?? [];
    routes?.stop();
    for (const [name, why] of Object.entries(routes?.status().refused ?? {})) problems.push(`server ${name} cannot be routed: ${why}`);
    await new NginxController({ nginxBin: nginx.bin, runtimeDir: scratch, log }).test(render(upstreams));
  } catch (err) {
    problems.push(`nginx refuses the rendered config: ${(err as Error).message}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return problems;
}
