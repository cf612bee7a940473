import type { XrefEvent } from '../../src/domain/envelope.ts';

/** A small deterministic PRNG (mulberry32), so every run benches the same log. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LogShape {
  events: number;
  identifiers: number;
  seed?: number;
  /**
   * Also give each event what an analyst filters on: a `category`, a `session_id` (one per
   * identifier and day) and `data.path` (default off: the engine benchmarks keep their shape).
   */
  rich?: boolean;
}

const CATEGORIES = ['navigation', 'click', 'form', 'media'];

const KINDS = ['cookie', 'device_id', 'anonymous_id'];
const START = Date.parse('2024-01-01T00:00:00.000Z');
const DAY_MS = 24 * 3600 * 1000;

/**
 * A web-like log over two weeks of event time. A fifth of the identifiers are users (db_id); the
 * rest are third-party ids. Activity is skewed (a few identifiers send many events); the least
 * active quarter of the third-party ids never sign in (bounce visitors). A third-party id sends anonymous events until its user
 * signs in (a linking event); after that, half of its events also carry the user id, as Segment
 * clients do after `identify`. Users also send events of their own.
 */
export function webLog({ events, identifiers, seed = 42, rich = false }: LogShape): XrefEvent[] {
  const rand = random(seed);
  const users = Math.floor(identifiers / 5);
  const third = identifiers - users;
  const linked = new Uint8Array(third);
  // the least active quarter of third-party ids never sign in
  const bounceFrom = Math.floor(third * 0.75);
  const out: XrefEvent[] = new Array(events);
  const span = 14 * DAY_MS;
  for (let i = 0; i < events; i++) {
    const timestamp = new Date(START + Math.floor((i / events) * span)).toISOString();
    const r = rand();
    let ids: Record<string, string>;
    if (r < 0.15) {
      ids = { db_id: String(1 + Math.floor(rand() * rand() * users)) };
    } else {
      const t = Math.floor(rand() * rand() * third);
      const user = String(1 + (t % users));
      const tp = { [KINDS[t % KINDS.length]!]: `t${t}` };
      if (t >= bounceFrom) ids = tp;
      else if (linked[t] === 0) {
        if (rand() < 0.35) {
          linked[t] = 1;
          ids = { db_id: user, ...tp };
        } else ids = tp;
      } else ids = rand() < 0.5 ? { db_id: user, ...tp } : tp;
    }
    const event: XrefEvent = { id: `ev-${i}`, name: r < 0.15 ? 'purchase' : 'pageview', timestamp, ids };
    if (rich) {
      const who = Object.values(ids).join('+');
      const day = Math.floor((i / events) * 14);
      out[i] = { ...event, category: r < 0.15 ? 'commerce' : CATEGORIES[i % CATEGORIES.length]!, session_id: `s-${who}-${day}`, data: { path: `/p/${i % 500}` } };
    } else out[i] = event;
  }
  return out;
}
