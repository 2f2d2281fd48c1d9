import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadOptions, Measured } from './load.ts';
import { nginxVersion } from './processes.ts';

export interface Row extends Measured {
  readonly row: string;
  readonly what: string;
  /** Rows that go through the gateway are compared with (a). */
  readonly gateway: boolean;
  /** requests/s of this row / requests/s of (a). */
  ratio?: number;
  /** p50 of this row - p50 of (a), in ms. */
  addedP50?: number;
  /** Cores each part used during the measured run (`other`: the rest of the machine). */
  cpu?: Record<string, number>;
  /** Anything else worth keeping: row (f)'s catalog changes and nginx reloads, row (j)'s backend count and direct reference. */
  notes?: Record<string, number>;
}

/**
 * The targets of the cached-decisions issue (docs/performance.md "Targets"), per row: requests/s
 * as a fraction of (a)'s, and (where set) the most p50 may add. The benchmark reports them, it
 * does not fail on them.
 */
export const TARGETS = {
  rows: {
    b: { ratio: 0.9, addedP50Ms: 0.3 },
    c: { ratio: 0.85, addedP50Ms: undefined },
    d: { ratio: 0.9, addedP50Ms: 0.3 },
    g: { ratio: 0.9, addedP50Ms: 0.3 },
  } as Record<string, { ratio: number; addedP50Ms: number | undefined }>,
  validateChecksPerSecond: 10_000,
} as const;

export function compareWithDirect(rows: Row[]): void {
  const direct = rows.find((r) => r.row === 'a');
  if (!direct) return;
  for (const row of rows) {
    if (!row.gateway) continue;
    row.ratio = row.rps / direct.rps;
    row.addedP50 = row.p50 - direct.p50;
  }
}

/** One line per target: what was measured and whether it met the target. */
export function targetLines(rows: readonly Row[]): string[] {
  const lines: string[] = [];
  for (const row of rows) {
    const target = TARGETS.rows[row.row];
    if (target === undefined || row.ratio === undefined || row.addedP50 === undefined) continue;
    lines.push(`(${row.row}) requests/s ${fmt(row.ratio, 2)} x direct (target >= ${target.ratio}): ${row.ratio >= target.ratio ? 'met' : 'NOT met'}`);
    if (target.addedP50Ms !== undefined)
      lines.push(
        `(${row.row}) added p50 ${fmt(row.addedP50, 2)} ms (target <= ${target.addedP50Ms}): ${row.addedP50 <= target.addedP50Ms ? 'met' : 'NOT met'}`,
      );
  }
  const validate = rows.find((r) => r.row === 'e');
  if (validate) {
    lines.push(
      `(e) /auth/validate ${fmt(validate.rps, 0)} checks/s (target >= ${TARGETS.validateChecksPerSecond}): ${validate.rps >= TARGETS.validateChecksPerSecond ? 'met' : 'NOT met'}`,
    );
  }
  const failed = rows.filter((r) => r.non2xx + r.errors > 0).map((r) => `(${r.row})`);
  lines.push(`non-2xx + errors: ${failed.length === 0 ? 'zero in every row (target: zero): met' : `in ${failed.join(' ')} (target: zero): NOT met`}`);
  return lines;
}

const fmt = (n: number | undefined, digits: number): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

/** The table, as plain text (also pasted into docs/performance.md as Markdown). */
export function table(rows: readonly Row[], markdown = false): string {
  const header = ['row', 'what', 'requests/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'x direct', '+p50 ms'];
  const cells = rows.map((r) => [
    `(${r.row})`,
    r.what,
    fmt(r.rps, 0),
    fmt(r.p50, 2),
    fmt(r.p99, 2),
    String(r.non2xx),
    String(r.errors),
    fmt(r.ratio, 2),
    r.addedP50 === undefined ? '-' : `${r.addedP50 >= 0 ? '+' : ''}${fmt(r.addedP50, 2)}`,
  ]);
  if (markdown) {
    const line = (c: string[]) => `| ${c.join(' | ')} |`;
    return [line(header), line(header.map((_, i) => (i < 2 ? '---' : '---:'))), ...cells.map(line)].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const pad = (c: string[]) => c.map((v, i) => (i < 2 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join('  ');
  return [pad(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(pad)].join('\n');
}

/** Cores used per part and row, one column per part (`registry nginx` is the gateway's nginx). */
export function cpuTable(rows: readonly Row[]): string {
  const machine = ['kernel irq', 'steal', 'other'];
  const seen = [...new Set(rows.flatMap((r) => Object.keys(r.cpu ?? {})))];
  const parts = [...seen.filter((p) => !machine.includes(p)), ...machine.filter((p) => seen.includes(p))];
  const header = ['row', ...parts];
  const cells = rows.map((r) => [`(${r.row})`, ...parts.map((p) => fmt(r.cpu?.[p], 2))]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const pad = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join('  ');
  return [pad(header), ...cells.map(pad)].join('\n');
}

/** The commit measured, and whether the code under test had uncommitted changes. */
export function codeInfo(root: string): { commit: string; uncommitted: string[] } {
  const git = (...args: string[]) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' }).stdout ?? '';
  const uncommitted = git('status', '--porcelain', '--', 'registry', 'nginx', 'servers')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(3));
  return { commit: git('rev-parse', '--short', 'HEAD').trim() || 'unknown', uncommitted };
}

export function machineInfo(): Record<string, unknown> {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    nginx: nginxVersion(),
    loadAverage: loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/** What the benchmark prints at the end: the code and machine, the table, the targets, the CPU. */
export function summary(root: string, load: LoadOptions, rows: readonly Row[]): string {
  const machine = machineInfo();
  const code = codeInfo(root);
  const out = [
    '',
    `commit ${code.commit}${code.uncommitted.length > 0 ? ` + uncommitted changes (${code.uncommitted.join(', ')})` : ''}; ` +
      `${machine['nproc']} cores (${machine['cpu']}), ${machine['node']}, ${machine['nginx']}; ` +
      `${load.connections} connections, ${load.duration} s after a ${load.warmup} s warm-up, pipelining 1`,
    '',
    table(rows),
    '',
    ...targetLines(rows),
    '',
    'CPU during the measured runs, in cores (2 = the whole machine):',
    cpuTable(rows),
  ];
  const busy = rows.filter((r) => (r.cpu?.['other'] ?? 0) > 0.15).map((r) => `(${r.row})`);
  if (busy.length > 0)
    out.push(`warning: other processes used CPU during ${busy.join(' ')} (column "other"); those numbers are low, re-run on an idle machine`);
  const churn = rows.find((r) => r.row === 'f');
  if (churn?.notes) {
    const n = churn.notes;
    out.push(
      `(f): ${n['catalogChanges']} catalog changes (${n['serversAdded']} servers added on new backend ports, ${n['serversEdited']} edited, ` +
        `${n['serversToggled']} toggled, ${n['serversDeleted']} deleted), ${n['nginxReloads']} nginx reloads, ` +
        `${churn.non2xx + churn.errors} failed requests during the measured run (target: 0 and 0)`,
    );
  }
  const perUser = rows.find((r) => r.row === 'j');
  if (perUser?.notes) {
    const n = perUser.notes;
    const directRps = n['directRps'] ?? Number.NaN;
    out.push(
      `(j): ${n['backendReceivedWithBearer']} requests reached the backend with the person's token for ${perUser.requests} answers, ` +
        `${n['backendTokenRequests']} token requests at its authorization server during the measured run (target: all, and 0); ` +
        `the backend through plain nginx with its own token: ${fmt(directRps, 0)} requests/s, p50 ${fmt(n['directP50'], 2)} ms ` +
        `(${n['directFailed']} failed), so (j) is ${fmt(perUser.rps / directRps, 2)} x its own direct, ` +
        `+${fmt(perUser.p50 - (n['directP50'] ?? Number.NaN), 2)} ms p50`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** Writes bench/results/<ISO time>.json (git-ignored) and returns its path. */
export function writeResults(root: string, load: LoadOptions, rows: readonly Row[], startedAt: Date): string {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(
    dir,
    `${startedAt
      .toISOString()
      .replace(/\.\d+Z$/, 'Z')
      .replaceAll(':', '-')}.json`,
  );
  const body = {
    startedAt: startedAt.toISOString(),
    code: codeInfo(root),
    machine: machineInfo(),
    load: { ...load, pipelining: 1 },
    targets: TARGETS,
    rows,
    verdict: targetLines(rows),
  };
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
  return file;
}
