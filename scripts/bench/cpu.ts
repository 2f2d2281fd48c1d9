import { readdirSync, readFileSync } from 'node:fs';

/** Linux clock ticks per second (`getconf CLK_TCK`), 100 on every usual kernel. */
const TICKS_PER_SECOND = 100;

/** CPU seconds used so far, per part: `load generator`, and per started group `<name>` / `<name> nginx`. */
export type CpuSample = Record<string, number>;

/**
 * Reads /proc for every process in the given process groups (the benchmark's children each
 * lead one): user + system time, split into nginx and the rest, so the registry and the nginx
 * it runs are told apart. A process that exits counts in its parent once waited for (an
 * old worker in its nginx master); what the benchmark's children use is exact, the rest of
 * the machine is `other` in {@link coresUsed}. Empty where /proc is missing.
 */
export function sampleCpu(groups: readonly { name: string; pid: number }[]): CpuSample {
  const byGroup = new Map(groups.map((g) => [g.pid, g.name]));
  const usage = process.cpuUsage();
  const sample: CpuSample = { ...machineSeconds(), 'load generator': (usage.user + usage.system) / 1e6 };
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return {};
  }
  for (const pid of entries) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp ... utime(14) stime(15) cutime(16) cstime(17); comm may hold
    // spaces, so split after ')'. cutime/cstime hold the children that exited and were waited
    // for: the nginx workers a reload retired, the registry's `nginx -t` runs.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const group = byGroup.get(Number(fields[2]));
    if (group === undefined) continue;
    const key = comm === 'nginx' && group !== 'direct-nginx' ? `${group} nginx` : group;
    const seconds = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
    sample[key] = (sample[key] ?? 0) + seconds;
  }
  return sample;
}

const PROCESSES = 'machine processes';
const KERNEL = 'kernel irq';
const STEAL = 'steal';

/**
 * Machine-wide CPU seconds, all cores (/proc/stat): time in processes (user, nice, system),
 * in interrupts (irq, softirq: much of loopback TCP is handled there, charged to no process)
 * and stolen by the hypervisor.
 */
function machineSeconds(): CpuSample {
  try {
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    return { [PROCESSES]: (user + nice + system) / TICKS_PER_SECOND, [KERNEL]: (irq + softirq) / TICKS_PER_SECOND, [STEAL]: steal / TICKS_PER_SECOND };
  } catch {
    return {};
  }
}

/**
 * Cores used per part between two samples over `seconds` of wall time (1.0 = one core busy),
 * with `kernel irq`, `steal`, and `other`: what processes not started by the benchmark used
 * meanwhile (anything above ~0.1 skews a row).
 */
export function coresUsed(before: CpuSample, after: CpuSample, seconds: number): Record<string, number> {
  const cores = (key: string): number => ((after[key] ?? Number.NaN) - (before[key] ?? Number.NaN)) / seconds;
  const out: Record<string, number> = {};
  let ours = 0;
  for (const key of Object.keys(after)) {
    if (key === PROCESSES) continue;
    out[key] = round(cores(key));
    if (key !== KERNEL && key !== STEAL) ours += cores(key);
  }
  const processes = cores(PROCESSES);
  if (!Number.isNaN(processes)) out['other'] = round(Math.max(0, processes - ours));
  return out;
}

const round = (n: number): number => Math.round(n * 100) / 100;
