import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadServerDefinition } from '../src/catalog/load-definition.ts';

/*
 * The deployment artefacts (docker-compose.yml, deploy/compose/, deploy/kubernetes/) as the
 * tools render them: `docker-compose config` and `kubectl kustomize`, no engine and no cluster.
 * Each invariant here is one a replica set depends on (docs/scaling.md). A missing tool fails
 * the test, naming the package: a skipped check would pass a broken deployment.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const SECRET_ENV = ['SECRET_KEY', 'REDIS_URL', 'METRICS_TOKEN', 'ADMIN_PASSWORD', 'CREDENTIAL_KEYS'];
/** Environment names whose value is a credential: never a literal in a committed file. */
const SECRET_NAME = /SECRET|PASSWORD|TOKEN|_KEYS?$/;

function run(command: string, args: string[], env: NodeJS.ProcessEnv, install: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? `${command} is not installed; the deploy test needs it (${install})` : `${command}: ${result.error.message}`);
  }
  return result;
}

/** The environment of a child: PATH and HOME only, so the caller's variables cannot change what renders. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/tmp', ...extra };
}

/** A catalog folder's definitions, validated as the registry validates them. */
function catalog(dir: string): Map<string, { url: URL; json: Record<string, unknown> }> {
  const out = new Map<string, { url: URL; json: Record<string, unknown> }>();
  for (const file of readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const text = readFileSync(join(ROOT, dir, file), 'utf8');
    const result = loadServerDefinition(file, text);
    assert.ok(result.ok, `${dir}/${file}: ${result.ok ? '' : result.message}`);
    out.set(file, { url: new URL(result.definition.url), json: JSON.parse(text) as Record<string, unknown> });
  }
  return out;
}

function port(url: URL): number {
  return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
}

describe('deployment catalogs', () => {
  for (const dir of ['deploy/compose/catalog', 'deploy/kubernetes/catalog']) {
    test(`${dir} is the default catalog with only the backend URLs changed (no drift from registry/servers)`, () => {
      const deployed = catalog(dir);
      const defaults = catalog('registry/servers');
      assert.deepEqual([...deployed.keys()], [...defaults.keys()]);
      for (const [file, { json }] of deployed) {
        const { url: _ignored, ...rest } = json;
        const { url: _default, ...expected } = defaults.get(file)!.json;
        assert.deepEqual(rest, expected, `${dir}/${file}`);
        assert.notEqual(json['url'], defaults.get(file)!.json['url'], `${dir}/${file} must name a service, not 127.0.0.1`);
      }
    });
  }
});

interface ComposeService {
  image?: string;
  command?: string | string[];
  environment?: Record<string, string | null>;
  volumes?: (string | { source?: string; target?: string })[];
  ports?: unknown[];
  depends_on?: string[] | Record<string, unknown>;
  healthcheck?: { test?: string | string[] };
}

describe('docker-compose.yml', () => {
  const secretKey = `deploy-test-${randomBytes(16).toString('hex')}`;
  const compose = (env: Record<string, string>) =>
    run('docker-compose', ['-f', 'docker-compose.yml', 'config'], cleanEnv(env), 'apt-get install docker-compose, or put it on PATH');
  let services: Record<string, ComposeService> = {};
  let gateways: [string, ComposeService][] = [];

  before(() => {
    const rendered = compose({ SECRET_KEY: secretKey });
    assert.equal(rendered.status, 0, `docker-compose config failed:\n${rendered.stderr}`);
    services = (parse(rendered.stdout) as { services: Record<string, ComposeService> }).services;
    gateways = Object.entries(services).filter(([, s]) => s.environment?.['REDIS_URL'] !== undefined);
  });

  const commandOf = (s: ComposeService): string[] => (typeof s.command === 'string' ? s.command.split(/\s+/) : (s.command ?? []));
  const volumeText = (s: ComposeService): string[] => (s.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
  const dependsOn = (s: ComposeService): string[] => (Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {}));

  test('refuses to render without SECRET_KEY, naming it (no default secret in the file)', () => {
    const result = compose({});
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /SECRET_KEY/);
  });

  test('no credential is a literal: each is ${NAME}, ${NAME:-} or ${NAME:?message}', () => {
    const raw = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!SECRET_NAME.test(key) || key.endsWith('_ID') || key.endsWith('_FILE')) continue;
        assert.match(String(value), new RegExp(`^\\$\\{${key}(:-|:\\?[^}]*)?\\}$`), `${name}: ${key}`);
      }
    }
    assert.match(String(raw.services['gateway-1']?.environment?.['SECRET_KEY']), /^\$\{SECRET_KEY:\?/, 'SECRET_KEY is required, with a message');
  });

  test('redis persists (appendonly yes on a volume) and is health-checked with redis-cli ping', () => {
    const redis = services['redis'];
    assert.ok(redis, 'a redis service');
    assert.match(redis.image ?? '', /^redis(:|$)/);
    assert.match(commandOf(redis).join(' '), /--appendonly yes/);
    assert.ok(
      volumeText(redis).some((v) => v.endsWith(':/data') || v.includes(':/data:')),
      'a volume on /data',
    );
    assert.match([redis.healthcheck?.test ?? []].flat().join(' '), /redis-cli ping/);
  });

  test('at least two gateway replicas: one image, the same SECRET_KEY from the environment, REDIS_URL to the redis service', () => {
    assert.ok(gateways.length >= 2, `gateway replicas: ${gateways.map(([n]) => n).join(', ')}`);
    const images = new Set(gateways.map(([, s]) => s.image));
    assert.equal(images.size, 1, 'one image');
    const publicUrls = new Set(gateways.map(([, s]) => s.environment?.['GATEWAY_PUBLIC_URL']));
    assert.equal(publicUrls.size, 1, 'one public URL (the load balancer)');
    const states = new Set<string>();
    for (const [name, s] of gateways) {
      const env = s.environment ?? {};
      assert.equal(env['SECRET_KEY'], secretKey, `${name}: SECRET_KEY`);
      assert.equal(env['REDIS_URL'], 'redis://redis:6379', `${name}: REDIS_URL`);
      assert.equal(env['START_EXAMPLE_SERVERS'], 'false', `${name}: the example servers are services of their own`);
      assert.ok(dependsOn(s).includes('redis'), `${name} depends on redis`);
      const catalogDir = env['CATALOG_DIR'];
      assert.ok(
        volumeText(s).some((v) => v.includes('deploy/compose/catalog:') && v.includes(`:${catalogDir}`)),
        `${name}: deploy/compose/catalog mounted at CATALOG_DIR`,
      );
      const state = volumeText(s).find((v) => v.includes(':/var/lib/mcp-gateway'));
      assert.ok(state, `${name}: a STATE_DIR volume`);
      states.add(state.split(':')[0]!);
    }
    assert.equal(states.size, gateways.length, 'each replica has a STATE_DIR of its own');
  });

  test('the example servers are services of their own, where the catalog points', () => {
    for (const [file, { url }] of catalog('deploy/compose/catalog')) {
      const service = services[url.hostname];
      assert.ok(service, `${file}: no service named ${url.hostname}`);
      assert.equal(service.environment?.['PORT'], String(port(url)), `${url.hostname}: PORT`);
      assert.equal(service.environment?.['HOST'], '0.0.0.0', `${url.hostname}: HOST`);
      assert.match(commandOf(service).join(' '), new RegExp(`servers/${url.hostname}/server\\.ts`));
      for (const [name, gateway] of gateways) assert.ok(dependsOn(gateway).includes(url.hostname), `${name} starts after ${url.hostname}`);
    }
  });

  test('an nginx load balancer is the only published port: round robin over every replica, no affinity, streaming-friendly', () => {
    const lb = services['lb'];
    assert.ok(lb, 'an lb service');
    assert.match(lb.image ?? '', /^nginx:/);
    assert.ok(
      volumeText(lb).some((v) => v.includes('deploy/compose/lb.conf:')),
      'lb.conf mounted',
    );
    const published = Object.entries(services)
      .filter(([, s]) => (s.ports ?? []).length > 0)
      .map(([n]) => n);
    assert.deepEqual(published, ['lb']);
    const conf = readFileSync(join(ROOT, 'deploy/compose/lb.conf'), 'utf8').replace(/#.*$/gm, '');
    for (const [name] of gateways) assert.match(conf, new RegExp(`^\\s*server ${name}:8080\\b`, 'm'), `upstream ${name}`);
    assert.doesNotMatch(conf, /\b(ip_hash|sticky|hash)\b/, 'no session affinity');
    for (const directive of [
      /proxy_next_upstream error timeout;/,
      /proxy_buffering off;/,
      /proxy_http_version 1\.1;/,
      /proxy_set_header Connection "";/,
      /keepalive \d+;/,
    ]) {
      assert.match(conf, directive);
    }
    for (const header of ['X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host']) assert.match(conf, new RegExp(`proxy_set_header ${header} `));
    const readTimeout = /proxy_read_timeout (\d+)s;/.exec(conf);
    assert.ok(readTimeout && Number(readTimeout[1]) >= 3600, 'SSE streams stay open for an hour');
  });
});

interface K8sObject {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}
interface Container {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  volumeMounts?: { name: string; mountPath: string }[];
  args?: string[];
  command?: string[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
  securityContext?: { runAsNonRoot?: boolean };
}

describe('deploy/kubernetes (kubectl kustomize)', () => {
  let objects: K8sObject[] = [];
  let pod: PodSpec;
  let gateway: Container;
  const find = (kind: string, name: string): K8sObject | undefined => objects.find((o) => o.kind === kind && o.metadata.name === name);

  before(() => {
    const rendered = run('kubectl', ['kustomize', 'deploy/kubernetes'], cleanEnv(), 'install kubectl (it includes kustomize), e.g. apt-get install kubectl');
    assert.equal(rendered.status, 0, `kubectl kustomize failed:\n${rendered.stderr}`);
    objects = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as K8sObject);
    const deployment = find('Deployment', 'mcp-gateway');
    assert.ok(deployment, 'a Deployment named mcp-gateway');
    pod = (deployment.spec as { template: { spec: PodSpec } }).template.spec;
    const container = pod.containers.find((c) => c.ports?.some((p) => p.containerPort === 8080));
    assert.ok(container, 'a container on port 8080');
    gateway = container;
  });

  const envOf = (name: string): EnvVar | undefined => gateway.env?.find((e) => e.name === name);
  const portNumber = (p: number | string | undefined): number | undefined =>
    typeof p === 'number' ? p : gateway.ports?.find((candidate) => candidate.name === p)?.containerPort;

  test('the Deployment runs at least two replicas, as non-root, with resources', () => {
    const spec = find('Deployment', 'mcp-gateway')!.spec as { replicas: number };
    assert.ok(spec.replicas >= 2, `replicas: ${spec.replicas}`);
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.ok(gateway.resources?.requests?.['memory'] && gateway.resources.limits?.['memory'], 'memory request and limit');
  });

  test('readiness is /readyz and liveness is /healthz, on the gateway port 8080', () => {
    assert.equal(gateway.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(portNumber(gateway.readinessProbe?.httpGet?.port), 8080);
    assert.equal(gateway.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(portNumber(gateway.livenessProbe?.httpGet?.port), 8080);
  });

  test('SECRET_KEY, REDIS_URL, METRICS_TOKEN and CREDENTIAL_KEYS come from the Secret mcp-gateway-secrets (secretKeyRef, never value:)', () => {
    for (const name of ['SECRET_KEY', 'REDIS_URL', 'METRICS_TOKEN', 'CREDENTIAL_KEYS']) {
      const env = envOf(name);
      assert.ok(env, `${name} is set`);
      assert.equal(env.value, undefined, `${name} has no literal value`);
      assert.deepEqual({ name: env.valueFrom?.secretKeyRef?.name, key: env.valueFrom?.secretKeyRef?.key }, { name: 'mcp-gateway-secrets', key: name });
    }
    for (const name of ['SECRET_KEY', 'REDIS_URL']) assert.notEqual(envOf(name)?.valueFrom?.secretKeyRef?.optional, true, `${name} is required`);
  });

  test('no Secret is rendered, and no ConfigMap or literal env var carries a credential', () => {
    assert.deepEqual(
      objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name),
      [],
    );
    for (const map of objects.filter((o) => o.kind === 'ConfigMap')) {
      for (const key of Object.keys(map.data ?? {})) assert.ok(!SECRET_ENV.includes(key), `ConfigMap ${map.metadata.name} holds ${key}`);
    }
    for (const env of gateway.env ?? []) assert.ok(!(SECRET_NAME.test(env.name) && env.value !== undefined), `${env.name} has a literal value`);
  });

  test('the catalog is a ConfigMap generated from deploy/kubernetes/catalog, mounted at CATALOG_DIR', () => {
    const volume = pod.volumes?.find((v) => v.configMap?.name.startsWith('mcp-gateway-catalog'));
    assert.ok(volume?.configMap, 'a volume from the catalog ConfigMap');
    const map = find('ConfigMap', volume.configMap.name);
    assert.ok(map, `ConfigMap ${volume.configMap.name} is rendered`);
    assert.deepEqual(Object.keys(map.data ?? {}).sort(), [...catalog('deploy/kubernetes/catalog').keys()], 'every catalog file, and only those');
    const mount = gateway.volumeMounts?.find((m) => m.name === volume.name);
    assert.ok(mount, 'the catalog volume is mounted');
    assert.equal(envOf('CATALOG_DIR')?.value, mount.mountPath);
    assert.equal(envOf('START_EXAMPLE_SERVERS')?.value, 'false');
  });

  test('every backend the catalog names is a Service on the right port', () => {
    for (const [file, { url }] of catalog('deploy/kubernetes/catalog')) {
      const service = find('Service', url.hostname);
      assert.ok(service, `${file}: no Service named ${url.hostname}`);
      const ports = (service.spec as { ports: { port: number }[] }).ports.map((p) => p.port);
      assert.ok(ports.includes(port(url)), `${url.hostname}: port ${port(url)} in ${ports.join(', ')}`);
    }
  });

  test('Redis (the redis component) persists with appendonly yes on a volume claim, behind a Service on 6379', () => {
    const redis = find('StatefulSet', 'redis');
    assert.ok(redis, 'a StatefulSet named redis');
    const spec = redis.spec as { template: { spec: PodSpec }; volumeClaimTemplates?: unknown[] };
    const container = spec.template.spec.containers[0]!;
    assert.match([...(container.command ?? []), ...(container.args ?? [])].join(' '), /--appendonly yes/);
    assert.ok((spec.volumeClaimTemplates ?? []).length > 0, 'a volume claim');
    const service = find('Service', 'redis');
    assert.ok(service, 'a Service named redis');
    assert.ok((service.spec as { ports: { port: number }[] }).ports.some((p) => p.port === 6379));
  });

  test('the Service reaches the gateway pods on 8080 without session affinity', () => {
    const service = find('Service', 'mcp-gateway');
    assert.ok(service, 'a Service named mcp-gateway');
    const spec = service.spec as { selector: Record<string, string>; sessionAffinity?: string; ports: { port: number }[] };
    assert.notEqual(spec.sessionAffinity, 'ClientIP');
    assert.ok(spec.ports.some((p) => p.port === 8080));
    const labels = (find('Deployment', 'mcp-gateway')!.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    for (const [key, value] of Object.entries(spec.selector)) assert.equal(labels[key], value, `selector ${key}`);
  });
});
