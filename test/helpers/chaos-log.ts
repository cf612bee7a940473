import { random } from './web-log.ts';
import type { ConfigInput } from '../../src/domain/config.ts';

export interface ChaosLogOptions {
  seed: number;
  /** Events in the log, duplicates included (default 22_000). */
  events?: number;
  /** Users (db_id) at most (default 560). */
  users?: number;
}

export interface ChaosLog {
  /** Raw envelopes, in log order. */
  events: Array<Record<string, unknown>>;
  config: ConfigInput;
}

type Ids = Record<string, string | number>;
type Rng = ReturnType<typeof rng>;

/** An event before it has its place in the log and its id. */
interface Planned {
  time: number;
  name: string;
  ids: Ids;
  session?: string;
  /** Ordinary logged-in traffic: what goes first when the plan has more events than asked for. */
  droppable: boolean;
}

interface User {
  readonly db: string;
  readonly cookies: string[];
  readonly devices: string[];
  readonly anon: string | undefined;
  /** Third-party ids this user logged in with (as far as the generator can tell) → the time. */
  readonly linkedAt: Map<string, number>;
  /** Devices this user logged in with: past the cap of 2 the engine refuses them. */
  devicesLinked: number;
  readonly sessions: number[];
}

const START = Date.parse('2024-03-04T00:00:00.000Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Traffic runs 07:00–23:00 each day: every night is a gap of 8 h, longer than the buffer TTL. */
const DAY_OPEN = 7 * HOUR;
const DAY_LENGTH = 16 * HOUR;
const JUNK = ['null', 'anonymous', '0', 'guest', 'undefined'];
const WEB = ['pageview', 'pageview', 'click', 'add_to_cart'];
const APP = ['app_open', 'screen_view', 'screen_view', 'tap'];
const SERVER = ['purchase', 'email_open', 'order_shipped'];

/** mulberry32 (web-log.ts's `random`), and the few draws the generator needs. */
function rng(seed: number) {
  const next = random(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!,
    hex: (chars: number) => {
      let out = '';
      while (out.length < chars) out += int(0, 0xffffffff).toString(16).padStart(8, '0');
      return out.slice(0, chars);
    },
  };
}

/**
 * A seeded, deterministic, hard event log for crash-equivalence tests, with the config it is meant
 * for (cookies relink `first`, at most 2 devices per user, buffers of 20 events and 1 h). Over a few
 * days of event time (nights are gaps of 8 h), users browse anonymously and log in (buffers flush),
 * carry a cookie and a device together before either links (chains), share cookies and hand devices
 * on (relinks and sticky conflicts), send third-party-only events naming two users (conflicts), use
 * more devices than the cap, and send junk values alone or beside good ids. Crawlers overflow
 * buffers, bounce visitors never link and expire (or stay unlinked at the end of the log). A few
 * percent of the events are redelivered duplicates, reuse an earlier id with other content, carry
 * an integer db_id, or are timed some minutes before the event logged before them.
 */
export function chaosLog({ seed, events = 22_000, users: userCount = 560 }: ChaosLogOptions): ChaosLog {
  const r = rng(seed);
  const days = Math.max(2, Math.round(events / 4_400));
  const end = START + (days - 1) * DAY + DAY_OPEN + DAY_LENGTH;
  const plan: Planned[] = [];

  const activeTime = () => START + r.int(0, days - 1) * DAY + DAY_OPEN + r.int(0, DAY_LENGTH - 1);
  /** A time during the day's traffic after `time` (within minutes when none is left). */
  const after = (time: number) => {
    for (let i = 0; i < 8; i++) {
      const t = activeTime();
      if (t > time + 5 * MINUTE) return t;
    }
    return time + r.int(5, 40) * MINUTE;
  };
  const db = (user: User): string | number => (r.chance(0.12) ? Number(user.db) : user.db);
  /** Now and then a junk value beside the good ids, under a kind the event does not carry yet. */
  const junky = (ids: Ids): Ids => {
    if (!r.chance(0.03)) return ids;
    const kind = r.pick(['cookie', 'device', 'anonymous_id', 'db_id'].filter((k) => !(k in ids)));
    return kind === undefined ? ids : { ...ids, [kind]: r.pick(JUNK) };
  };
  const session = (start: number, gap: [number, number] = [5_000, 120_000]) => {
    const id = `s_${r.hex(10)}`;
    let time = start;
    return {
      emit(name: string, ids: Ids, droppable = false) {
        plan.push({ time, name, ids, session: id, droppable });
        time += r.int(gap[0], gap[1]);
        return time;
      },
      get time() {
        return time;
      },
    };
  };
  const cookie = () => `ck_${r.hex(14)}`;
  const device = () => `${r.hex(8)}-${r.hex(4)}-${r.hex(4)}`.toUpperCase();
  const anonymousId = () => `${r.hex(8)}-${r.hex(4)}-4${r.hex(3)}-${r.hex(4)}-${r.hex(12)}`;

  // --- users, and when they come -------------------------------------------------------------
  const total = Math.max(1, events);
  const duplicates = Math.round(total * 0.025);
  const reused = Math.min(Math.max(1, Math.round(total * 0.002)), total - 1);
  const base = total - duplicates - reused;
  const sessionCount = Math.max(1, Math.round((base * 0.72) / 6));
  const population: User[] = [];
  for (let i = 0; i < Math.min(Math.max(1, userCount), sessionCount); i++) {
    const devices = r.pick([0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4]);
    population.push({
      db: String(1000 + i),
      cookies: Array.from({ length: r.pick([1, 1, 1, 1, 2, 2, 2, 3, 3, 4]) }, cookie),
      devices: Array.from({ length: devices }, device),
      anon: r.chance(0.5) ? anonymousId() : undefined,
      linkedAt: new Map(),
      devicesLinked: 0,
      sessions: [activeTime()],
    });
  }
  for (let i = population.length; i < sessionCount; i++) {
    const skewed = r.chance(0.5) ? r.next() * r.next() : r.next();
    population[Math.floor(skewed * population.length)]!.sessions.push(activeTime());
  }

  const linked = (user: User, key: string) => user.linkedAt.has(key);
  const markLinked = (user: User, key: string, time: number) => {
    if (linked(user, key)) return;
    if (key.startsWith('device:') && user.devicesLinked++ >= 2) return; // refused by the cap
    user.linkedAt.set(key, time);
  };
  /** A fresh id of the list most of the time (so every one gets used), else any. */
  const choose = (user: User, kind: string, list: string[]) => {
    const fresh = list.filter((v) => !linked(user, `${kind}:${v}`));
    return fresh.length > 0 && r.chance(0.7) ? fresh[0]! : r.pick(list);
  };

  /** Anonymous pages, maybe a login with the cookie (and the anonymous_id riding along), then more. */
  const web = (user: User, start: number) => {
    const s = session(start);
    const value = choose(user, 'cookie', user.cookies);
    const anon = user.anon !== undefined && r.chance(0.5) ? user.anon : undefined;
    const thirdParty = (): Ids => (anon !== undefined && r.chance(0.6) ? { cookie: value, anonymous_id: anon } : { cookie: value });
    if (!linked(user, `cookie:${value}`)) {
      for (let k = r.int(1, 5); k > 0; k--) s.emit(r.pick(WEB), junky(thirdParty()));
      if (!r.chance(0.85)) return; // left without logging in: a later login comes too late
      const login = junky({ db_id: db(user), ...thirdParty() });
      s.emit(user.linkedAt.size === 0 ? 'signup' : 'login', login);
      markLinked(user, `cookie:${value}`, s.time);
    }
    for (let k = r.int(0, 6); k > 0; k--) {
      const ids = r.chance(0.4) ? { db_id: db(user), cookie: value } : thirdParty();
      if (ids.anonymous_id !== undefined) markLinked(user, `anonymous_id:${anon}`, s.time); // a chain
      s.emit(r.pick(WEB), junky(ids), true);
    }
  };

  /** The same on a device: the third and fourth devices a user logs in with are refused (cap). */
  const app = (user: User, start: number) => {
    const s = session(start);
    const value = choose(user, 'device', user.devices);
    if (!linked(user, `device:${value}`)) {
      for (let k = r.int(1, 4); k > 0; k--) s.emit(r.pick(APP), junky({ device: value }));
      if (!r.chance(0.85)) return;
      s.emit('login', junky({ db_id: db(user), device: value }));
      markLinked(user, `device:${value}`, s.time);
    }
    for (let k = r.int(0, 6); k > 0; k--) s.emit(r.pick(APP), junky(r.chance(0.3) ? { db_id: db(user), device: value } : { device: value }), true);
  };

  /** A cookie and a device (or the anonymous_id) seen together while unlinked; one of them may log in. */
  const chain = (user: User, start: number) => {
    const s = session(start);
    const first = { cookie: choose(user, 'cookie', user.cookies) };
    const second: Ids = user.devices.length > 0 ? { device: choose(user, 'device', user.devices) } : { anonymous_id: user.anon ?? anonymousId() };
    for (let k = r.int(2, 5); k > 0; k--) s.emit(r.pick(WEB), junky({ ...first, ...second }));
    if (r.chance(0.4)) s.emit(r.pick(WEB), first);
    if (!r.chance(0.75)) return;
    const via = r.chance(0.5) ? first : second;
    s.emit('login', { db_id: db(user), ...via });
    for (const [kind, value] of Object.entries({ ...first, ...second })) markLinked(user, `${kind}:${value}`, s.time);
  };

  const server = (user: User, start: number) => {
    const s = session(start, [1_000, 30 * MINUTE]);
    for (let k = r.int(1, 3); k > 0; k--) s.emit(r.pick(SERVER), { db_id: db(user) }, true);
  };

  for (const user of population) {
    user.sessions.sort((a, b) => a - b);
    for (const start of user.sessions) {
      const roll = r.next();
      if (roll < 0.12) server(user, start);
      else if (roll < 0.22) chain(user, start);
      else if (roll < 0.57 && user.devices.length > 0) app(user, start);
      else web(user, start);
    }
  }

  // --- trouble between users, and strangers ------------------------------------------------------
  const linkedIds = (user: User, kinds: string[]) => [...user.linkedAt].filter(([key]) => kinds.includes(key.slice(0, key.indexOf(':'))));
  /** Two users, and an id of each linked already (kinds as asked), or undefined when there is none. */
  const pair = (kindsOfA: string[], kindsOfB: string[]) => {
    for (let tries = 0; tries < 20 && population.length > 1; tries++) {
      const a = r.pick(population);
      const b = r.pick(population);
      const ofA = linkedIds(a, kindsOfA);
      const ofB = linkedIds(b, kindsOfB);
      if (a !== b && ofA.length > 0 && ofB.length > 0) return { a, b, idA: r.pick(ofA), idB: r.pick(ofB) };
    }
    return undefined;
  };
  const split = (key: string): Ids => ({ [key.slice(0, key.indexOf(':'))]: key.slice(key.indexOf(':') + 1) });
  const scaled = (perUser: number) => Math.max(2, Math.round(population.length * perUser));

  // A second user logs in with someone's cookie (sticky: a conflict) or device / anonymous_id (a relink).
  for (const [kinds, count] of [
    [['cookie'], scaled(0.07)],
    [['device'], scaled(0.05)],
    [['anonymous_id'], scaled(0.04)],
  ] as const) {
    for (let i = 0; i < count; i++) {
      const found = pair([...kinds], ['cookie', 'device', 'anonymous_id']);
      if (found === undefined) continue;
      const [key, linkedTime] = found.idA;
      const s = session(after(linkedTime));
      const ids = split(key);
      for (let k = r.int(0, 2); k > 0; k--) s.emit(r.pick(WEB), ids);
      s.emit('login', { db_id: db(found.b), ...ids });
      for (let k = r.int(0, 3); k > 0; k--) s.emit(r.pick(WEB), ids);
    }
  }
  // Third-party-only events naming ids of two users.
  for (let i = scaled(0.08); i > 0; i--) {
    const found = pair(['cookie'], ['device', 'anonymous_id']);
    if (found === undefined) continue;
    const s = session(after(Math.max(found.idA[1], found.idB[1])));
    for (let k = r.int(1, 2); k > 0; k--) s.emit(r.pick(WEB), { ...split(found.idA[0]), ...split(found.idB[0]) });
  }
  // Bounce visitors: they never log in.
  const bounce = (start: number) => {
    const s = session(start);
    const ids: Ids = r.chance(0.6) ? { cookie: cookie() } : r.chance(0.5) ? { anonymous_id: anonymousId() } : { cookie: cookie(), anonymous_id: anonymousId() };
    for (let k = r.chance(0.7) ? 1 : 2; k > 0; k--) s.emit(r.pick(WEB), junky(ids));
  };
  for (let i = population.length; i > 0; i--) bounce(activeTime());
  for (let i = 0; i < 5; i++) bounce(end - 40 * MINUTE + i * 5 * MINUTE); // still buffered when the log ends
  // Crawlers: more events than a buffer holds; some log in at the end (the newest 20 flush).
  for (let i = Math.max(2, Math.round(base / 1_200)); i > 0; i--) {
    const s = session(activeTime(), [2_000, 15_000]);
    const ids = { cookie: cookie() };
    for (let k = r.int(24, 45); k > 0; k--) s.emit('pageview', ids);
    if (r.chance(0.35) && population.length > 0) s.emit('signup', { db_id: db(r.pick(population)), ...ids });
  }
  // Junk alone: nothing to group it by.
  for (let i = Math.max(2, Math.round(base * 0.006)); i > 0; i--) {
    const s = session(activeTime());
    const kinds = r.chance(0.25) ? ['cookie', 'anonymous_id'] : [r.pick(['cookie', 'device', 'anonymous_id'])];
    const ids = Object.fromEntries(kinds.map((kind) => [kind, r.pick(JUNK)]));
    for (let k = r.int(1, 2); k > 0; k--) s.emit(r.pick(WEB), ids);
  }

  // --- exactly `base` events: fill with server-side events, or drop logged-in traffic ----------
  while (plan.length < base) {
    const user = r.pick(population);
    plan.push({ time: after(user.sessions[0]!), name: r.pick(SERVER), ids: { db_id: db(user) }, droppable: true });
  }
  if (plan.length > base) {
    const order = shuffle(r, plan.map((_, i) => i)).sort((x, y) => Number(plan[y]!.droppable) - Number(plan[x]!.droppable));
    const dropped = new Set(order.slice(0, plan.length - base));
    const kept = plan.filter((_, i) => !dropped.has(i));
    plan.length = 0;
    plan.push(...kept);
  }

  // --- the log: in time order, then some clocks run late, then redeliveries --------------------
  plan.sort((x, y) => x.time - y.time);
  const log: Array<Record<string, unknown>> = [];
  let previous = -Infinity;
  plan.forEach((item, i) => {
    const time = i > 0 && r.chance(0.03) ? previous - r.int(2, 15) * MINUTE - r.int(0, 999) : item.time;
    previous = time;
    const event: Record<string, unknown> = { id: `ev_${r.hex(6)}${i.toString(36).padStart(4, '0')}`, name: item.name, timestamp: new Date(time).toISOString(), ids: { ...item.ids } };
    if (item.session !== undefined) event.session_id = item.session;
    if (item.name === 'pageview') event.data = { path: r.pick(['/', '/pricing', '/blog', '/cart', '/account']) };
    log.push(event);
  });
  const later = new Map<number, Array<Record<string, unknown>>>();
  /** Puts an event somewhere after `from`: mostly soon after (a retry), sometimes much later. */
  const insertAfter = (from: number, make: (at: number) => Record<string, unknown>) => {
    const at = r.chance(0.8) ? Math.min(log.length - 1, from + r.int(1, 60)) : r.int(from, log.length - 1);
    const list = later.get(at) ?? [];
    list.push(make(at));
    later.set(at, list);
  };
  for (let i = 0; i < duplicates; i++) {
    const from = r.int(0, log.length - 1);
    insertAfter(from, () => structuredClone(log[from]!));
  }
  for (let i = 0; i < reused; i++) {
    const from = r.int(0, log.length - 1);
    const other = r.pick(log);
    insertAfter(from, (at) => ({ id: log[from]!.id, name: 'retry', timestamp: log[at]!.timestamp, ids: structuredClone(other.ids) }));
  }
  const out: Array<Record<string, unknown>> = [];
  log.forEach((event, i) => out.push(event, ...(later.get(i) ?? [])));
  return {
    events: out,
    config: { relink: { cookie: 'first' }, maxIdsPerUser: { device: 2 }, buffer: { maxEvents: 20, ttlMs: 3_600_000 } },
  };
}

function shuffle<T>(r: Rng, list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}
