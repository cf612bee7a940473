import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chaosTrial } from '../helpers/chaos-run.ts';

/**
 * Crash equivalence (docs/architecture.md, identity rules): whatever is killed when, the output streams equal the offline
 * engine on the same log. CI runs 3 seeds; XREF_CHAOS_RUNS, XREF_CHAOS_FIRST_SEED, XREF_CHAOS_KILLS
 * and XREF_CHAOS_EVENTS run more (XREF_CHAOS_REPORT=<file> writes every result as JSON lines).
 */
const runs = Number(process.env.XREF_CHAOS_RUNS ?? 3);
const firstSeed = Number(process.env.XREF_CHAOS_FIRST_SEED ?? 1);
const kills = Number(process.env.XREF_CHAOS_KILLS ?? 6);
const events = Number(process.env.XREF_CHAOS_EVENTS ?? 22_000);
const report = process.env.XREF_CHAOS_REPORT;

describe('crash equivalence under chaos', () => {
  const seeds = Array.from({ length: runs }, (_, i) => firstSeed + i);

  it.each(seeds)(
    `seed %i: ${kills} engine SIGKILLs (start-up, checkpoint, anywhere), a nats-server SIGKILL under a backlog, a SIGSTOP, unlinks among the events: the streams equal the offline engine`,
    async (seed) => {
      const result = await chaosTrial({ seed, kills, events });
      if (report !== undefined) writeFileSync(report, `${JSON.stringify(result)}\n`, { flag: 'a' });
      expect(result.kills).toBeGreaterThanOrEqual(kills);
      expect(result.differences.slice(0, 40)).toEqual([]);
      expect(result.outputs.groups).toBeGreaterThan(0);
      expect(result.outputs.retracted).toBeGreaterThan(0);
    },
    600_000,
  );
});
