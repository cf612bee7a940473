/**
 * The CPU time a bench phase takes on this machine, per process: this one (xref, every thread),
 * the nats-server the bench started, and PostgreSQL's processes when the server is local. Read
 * from Linux's /proc; elsewhere the servers' parts are NaN. On a machine whose cores are all busy,
 * a rate is bounded by the CPU time its work takes, whatever runs in parallel.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuSeconds {
  readonly xref: number;
  readonly nats: number;
  readonly postgres: number;
  /** Everything the machine ran meanwhile, and what it could have run (its cores × the wall time). */
  readonly machine: number;
  readonly capacity: number;
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a /proc/<pid>/stat line, in seconds (its command may hold spaces: the fields start after the last ')'). */
function statSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

function processSeconds(pid: number): number {
  try {
    return statSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return Number.NaN;
  }
}

/** Every process named postgres (the server and its backends; one that ended meanwhile takes its time with it). */
function postgresSeconds(): number {
  let total = 0;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (stat.includes('(postgres)')) total += statSeconds(stat);
      } catch {
        // ended meanwhile
      }
    }
  } catch {
    return Number.NaN;
  }
  return total;
}

/** The busy CPU seconds of the whole machine so far (/proc/stat's first line less idle and iowait). */
function machineBusySeconds(): number {
  try {
    const ticks = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (ticks.reduce((a, b) => a + b, 0) - ticks[3]! - ticks[4]!) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

/** The CPU seconds of this process, the nats-server `natsPid` and local PostgreSQL from now to `read()`. */
export function cpuMeter(natsPid: number): { read(): CpuSeconds } {
  const own = process.cpuUsage();
  const nats = processSeconds(natsPid);
  const postgres = postgresSeconds();
  const machine = machineBusySeconds();
  const started = performance.now();
  return {
    read: () => {
      const used = process.cpuUsage(own);
      return {
        xref: (used.user + used.system) / 1e6,
        nats: processSeconds(natsPid) - nats,
        postgres: postgresSeconds() - postgres,
        machine: machineBusySeconds() - machine,
        capacity: (cpus().length * (performance.now() - started)) / 1000,
      };
    },
  };
}

/** The CPU seconds of several phases together. */
export function cpuSum(list: readonly CpuSeconds[]): CpuSeconds {
  const sum = (field: keyof CpuSeconds) => list.reduce((total, cpu) => total + cpu[field], 0);
  return { xref: sum('xref'), nats: sum('nats'), postgres: sum('postgres'), machine: sum('machine'), capacity: sum('capacity') };
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The CPU seconds a phase's own processes took (postgres counted only where it worked for it). */
export const cpuTotal = (cpu: CpuSeconds, withPostgres = false): number => cpu.xref + cpu.nats + (withPostgres ? cpu.postgres : 0);

/** `xref 3.1 + nats-server 1.2 (+ postgres 2.0) = 6.3 s (machine 88% busy)`, per `per` of `events`. */
export function cpuLine(cpu: CpuSeconds, events: number, withPostgres = false, per = 100_000): string {
  const scale = per / events;
  const parts = [`xref ${(cpu.xref * scale).toFixed(1)}`, `nats-server ${(cpu.nats * scale).toFixed(1)}`, ...(withPostgres ? [`postgres ${(cpu.postgres * scale).toFixed(1)}`] : [])];
  return `${parts.join(' + ')} = ${(cpuTotal(cpu, withPostgres) * scale).toFixed(1)} s (machine ${((100 * cpu.machine) / cpu.capacity).toFixed(0)}% busy)`;
}
