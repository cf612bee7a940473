import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { IdentityEngine } from '../../src/engine/engine.ts';
import type { Sink } from '../../src/engine/outputs.ts';
import { StateImage } from '../../src/engine/state-image.ts';
import { ev } from '../helpers/events.ts';

const config = resolveConfig({ buffer: { maxEvents: 3, ttlMs: 60 * 60_000 }, maxIdsPerUser: { device_id: 2 }, relink: { cookie: 'first' } });

function recorder() {
  const out: string[] = [];
  const sink: Sink = {
    resolved: (r) => out.push(`R ${r.outputId} via ${r.via.kind}:${r.via.value}`),
    unmatched: (u) => out.push(`U ${u.outputId} ${u.reason}`),
    audit: (a) => out.push(`A ${a.outputId}`),
  };
  return { out, sink };
}

/** A log touching every rule: links, buffers, chains, conflicts, caps, expiry, junk. */
const anyLog = fc
  .array(
    fc.record({
      user: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      cookie: fc.option(fc.constantFrom('c1', 'c2', 'c3', 'null'), { nil: undefined }),
      device: fc.option(fc.constantFrom('d1', 'd2', 'd3', 'd4'), { nil: undefined }),
      minute: fc.integer({ min: 0, max: 200 }),
    }),
    { minLength: 1, maxLength: 60 },
  )
  .map((rows) =>
    rows.map((row, i): XrefEvent => {
      const ids: Record<string, string | number> = {};
      if (row.user !== undefined) ids.db_id = String(row.user);
      if (row.cookie !== undefined) ids.cookie = row.cookie;
      if (row.device !== undefined) ids.device_id = row.device;
      if (Object.keys(ids).length === 0) ids.anonymous_id = `a${i % 3}`;
      return ev(`e${i}`, ids, { minute: row.minute + i });
    }),
  );

describe('checkpoint and resume', () => {
  it('stopping anywhere, checkpointing and resuming gives exactly the outputs of one run', () => {
    fc.assert(
      fc.property(anyLog, fc.array(fc.nat(), { maxLength: 4 }), fc.boolean(), (log, cuts, passivate) => {
        const whole = recorder();
        const one = new IdentityEngine({ config, sink: whole.sink });
        log.forEach((event, i) => one.ingest(event, i + 1));

        const pieces = recorder();
        const image = new StateImage();
        const stops = [...new Set(cuts.map((c) => c % log.length))].sort((a, b) => a - b);
        let engine = new IdentityEngine({ config, sink: pieces.sink, maxLiveActors: passivate ? 1 : 1000 });
        log.forEach((event, i) => {
          engine.ingest(event, i + 1);
          if (stops.includes(i)) {
            if (passivate) engine.passivateIdle(0);
            image.apply(engine.checkpoint());
            engine = new IdentityEngine({ config, sink: pieces.sink, ...image.resumeOptions(log.slice(0, i + 1).map((e, k) => [e.id, k + 1] as const)) });
          }
        });
        expect(pieces.out).toEqual(whole.out);
      }),
      { numRuns: 300 },
    );
  });

  it('a checkpoint holds the state at its input, however far the engine went on before it is written', () => {
    fc.assert(
      fc.property(anyLog, fc.nat(), fc.boolean(), (log, cut, passivate) => {
        const at = cut % log.length;
        const options = { config, sink: recorder().sink, maxLiveActors: passivate ? 1 : 1000 };
        const goesOn = new IdentityEngine(options);
        const stops = new IdentityEngine(options);
        let taken: ReturnType<IdentityEngine['checkpoint']> | undefined;
        log.forEach((event, i) => {
          goesOn.ingest(event, i + 1);
          if (i <= at) stops.ingest(event, i + 1);
          if (i === at) taken = goesOn.checkpoint();
        });
        // written only now, after every later input changed links and actors again
        const late = new StateImage().apply(taken!);
        const expected = new StateImage().apply(stops.checkpoint());
        expect(late.links).toEqual(expected.links);
        expect(late.identifiers).toEqual(expected.identifiers);
        expect(late.users).toEqual(expected.users);
      }),
      { numRuns: 300 },
    );
  });

  it('with a dedup window, a restart that refills the window from the log decides as one run did', () => {
    // event ids repeat, some within the window and some beyond it
    const repeating = fc.tuple(anyLog, fc.array(fc.nat({ max: 9 }), { minLength: 60, maxLength: 60 })).map(([log, picks]) =>
      log.map((event, i) => (picks[i]! < 4 ? { ...event, id: `e${Math.max(0, i - 1 - picks[i]! * 3)}` } : event)),
    );
    fc.assert(
      fc.property(repeating, fc.integer({ min: 0, max: 8 }), fc.array(fc.nat(), { maxLength: 4 }), (log, window, cuts) => {
        const whole = recorder();
        const one = new IdentityEngine({ config, sink: whole.sink, dedupWindow: window });
        log.forEach((event, i) => one.ingest(event, i + 1));

        const pieces = recorder();
        const image = new StateImage();
        const stops = new Set(cuts.map((c) => c % log.length));
        let engine = new IdentityEngine({ config, sink: pieces.sink, dedupWindow: window });
        log.forEach((event, i) => {
          engine.ingest(event, i + 1);
          if (!stops.has(i)) return;
          image.apply(engine.checkpoint());
          // what the service reads back at start: the ids of the last `window` inputs
          const lookback = log.map((e, k) => [e.id, k + 1] as const).slice(Math.max(0, i + 1 - window), i + 1);
          engine = new IdentityEngine({ config, sink: pieces.sink, dedupWindow: window, ...image.resumeOptions(lookback) });
        });
        expect(pieces.out).toEqual(whole.out);
      }),
      { numRuns: 300 },
    );
  });

  it('a buffer restored after its deadline passed in event time expires at once, exactly once', () => {
    const first = recorder();
    const engine = new IdentityEngine({ config, sink: first.sink });
    engine.ingest(ev('old', { cookie: 'c' }, { minute: 0 }), 1);
    const image = new StateImage().apply(engine.checkpoint());
    expect(image.identifiers.size).toBe(1);

    const after = recorder();
    const resumed = new IdentityEngine({ config, sink: after.sink, ...image.resumeOptions() });
    resumed.ingest(ev('late', { anonymous_id: 'x' }, { minute: 120 }), 2);
    resumed.ingest(ev('later', { anonymous_id: 'y' }, { minute: 180 }), 3);
    expect(after.out.filter((line) => line.startsWith('U old'))).toEqual(['U old:unmatched expired']);
    expect(resumed.checkpoint().identifiers).toContainEqual(['cookie:c', null]);
  });
});
