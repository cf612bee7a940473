import type { Config } from '../domain/config.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { XrefError, quote } from '../domain/errors.ts';
import type { UserRef } from '../engine/outputs.ts';
import { type ActivityConfig, resolveActivityConfig } from './activity-config.ts';
import { type ActivitySeries, type CountsSource, type SeriesRequest, planSeries, seriesOf, zoneOf } from './activity-series.ts';
import type { BucketRules } from './bucket-rules.ts';
import { type EventFeatures, FeatureRules } from './event-features.ts';
import { PERIOD_KINDS, type PeriodKind, periodStart, requestedZone, ZoneCalendar } from './periods.ts';

/**
 * Active people per period, counted incrementally in log order (docs/activity.md). Pure: no I/O,
 * no clock. For each input S of the log, in order:
 * 1. `input(S, event, timeMs)` when the engine accepted it: the event counts for its person;
 * 2. `retracted(S, …)` for every resolution an unlink at S took back, then `resolved(S, eventSeq,
 *    user)` for every resolution the engine decided while applying S;
 * 3. `endOfInput(S)`: identifiers seen together in an event still unresolved are one anonymous
 *    person from now on, and the periods the watermark has passed by their `close` close.
 * The same calls give the same counts, frozen ones included, however the log is split.
 */

export type { ActivityPoint, ActivitySeries, SeriesRequest } from './activity-series.ts';

/** One person's presence in one period: what `rows()` exports. */
export interface PersonPeriodRow {
  timeZone: string;
  period: PeriodKind;
  start: string;
  /** `user:<kind>:<id>`, or `anon:<identifier key>` for an anonymous person (one of its identifiers). */
  person: string;
  linked: boolean;
  /** The person's events in the period. */
  events: number;
  /** Per bucket, how many of them match its event part (`field`/`equals`, `name`); buckets with none are left out. */
  hits: Record<string, number>;
}

export interface CounterSummary {
  /** Inputs counted (`input` calls). */
  events: number;
  /** Events with no time: they count in no period. */
  untimed: number;
  /** Junk-only events: they count for no person. */
  unattributed: number;
  /** Events still anonymous (not resolved). */
  anonymous: number;
}

/** The small part of a counter's image: what it was made with, and where it is. */
export interface CounterScalars {
  version: 1;
  /** What the image was made with: restoring under other buckets or zones is refused. */
  columns: string[];
  zones: string[];
  watermark: number | null;
  summary: Omit<CounterSummary, 'anonymous'>;
  /** An input whose `endOfInput` has not come yet: [seq, its anonymous identifier keys, resolved, its event while not placed]. */
  current: [number, string[], boolean, [string, number, number[]] | null] | null;
  tables: TableBounds[];
}

/** A compact, JSON-serializable image of a counter: `ActivityCounter.restore` continues from it. */
export interface CounterState extends Omit<CounterScalars, 'tables'> {
  /** Union-find over anonymous identifier keys: [key, parent] for non-roots, [root, size] for roots of more than one. */
  parents: [string, string][];
  sizes: [string, number][];
  /** Events still anonymous: [seq, anchor identifier key, time, matched bucket indexes]. */
  pending: [number, string, number, number[]][];
  tables: TableState[];
}

/** One zone × period kind: how far it is closed, and the periods anything was counted in. */
export interface TableBounds {
  zone: string;
  period: PeriodKind;
  closedThrough: number | null;
  /** The first and last periods anything was counted in. */
  extent: [number, number] | null;
}

export interface TableState extends TableBounds {
  /** [period index, person, events, hits per bucket]. */
  rows: [number, string, number, number[]][];
  unattributed: [number, number][];
  frozen: [number, number[]][];
}

/** A person row now (`events` 0: it is gone). */
export interface RowChange {
  zone: string;
  period: PeriodKind;
  index: number;
  person: string;
  events: number;
  hits: number[];
}

/** A period's counts now: every column then the junk-only events, and its frozen counts once closed. */
export interface CountChange {
  zone: string;
  period: PeriodKind;
  index: number;
  counts: number[];
  frozen: number[] | null;
}

/** An anonymous identifier key now: its parent (null: a root) and size (null: a root of one, or not a root); both null: gone. */
export interface KeyChange {
  id: string;
  parent: string | null;
  size: number | null;
}

/** An event still anonymous now: [anchor identifier key, time, matched bucket indexes], or null once placed. */
export interface PendingChange {
  seq: number;
  pending: [string, number, number[]] | null;
}

/** Everything that changed in a counter since the last `takeChanges`. */
export interface CounterChanges {
  rows: RowChange[];
  counts: CountChange[];
  keys: KeyChange[];
  pending: PendingChange[];
  scalars: CounterScalars;
}

interface Row {
  events: number;
  hits: number[];
}

interface Pending {
  readonly anchor: string;
  readonly time: number;
  readonly matched: readonly number[];
}

const USER = 'user:';
const ANON = 'anon:';

function isLinked(person: string): boolean {
  return person.startsWith(USER);
}

/** Whether one event more (sign 1) or less (-1) leaves each bucket it matches with some of the person's events (none entered or left). */
function keepsBuckets(hits: readonly number[], matched: readonly number[], sign: 1 | -1): boolean {
  for (const m of matched) if (hits[m] === 0 || hits[m]! + sign <= 0) return false;
  return true;
}

/** One zone × period kind: its person rows, its counts now and its frozen counts. */
class PeriodTable {
  readonly rows = new Map<number, Map<string, Row>>();
  /** Per period: counts of every column, then unattributed events. */
  readonly current = new Map<number, number[]>();
  readonly frozen = new Map<number, number[]>();
  /** Periods with counts that are not closed yet. */
  readonly open = new Set<number>();
  /** Anonymous person → periods where it has a row (for merges). */
  readonly anonPeriods = new Map<string, Set<number>>();
  /** What changed since the last `takeChanges`: person rows per period, and periods' counts. */
  readonly changedRows = new Map<number, Set<string>>();
  readonly changedCounts = new Set<number>();
  closedThrough = -Infinity;
  first = Infinity;
  last = -Infinity;

  constructor(
    readonly calendar: ZoneCalendar,
    readonly kind: PeriodKind,
    readonly close: number,
    private readonly rules: BucketRules,
  ) {}

  /** A period's counts, to be changed. */
  counts(index: number): number[] {
    this.changedCounts.add(index);
    let counts = this.current.get(index);
    if (counts === undefined) {
      counts = new Array<number>(this.rules.columns + 1).fill(0);
      this.current.set(index, counts);
      if (index > this.closedThrough) this.open.add(index);
      if (index < this.first) this.first = index;
      if (index > this.last) this.last = index;
    }
    return counts;
  }

  /** One event more (sign 1) or less (-1) for a person in a period. */
  add(index: number, person: string, matched: readonly number[], sign: 1 | -1): void {
    const known = this.rows.get(index)?.get(person);
    // a person who stays in the period, in the same buckets (most events: a day, week or month seen
    // before): no count moves, so they are not taken out and put back
    if (known !== undefined && known.events + sign > 0 && keepsBuckets(known.hits, matched, sign)) {
      this.rowChanged(index, person);
      known.events += sign;
      for (const m of matched) known.hits[m]! += sign;
      return;
    }
    const counts = this.counts(index);
    let people = this.rows.get(index);
    if (people === undefined) this.rows.set(index, (people = new Map()));
    let row = people.get(person);
    const linked = isLinked(person);
    this.rowChanged(index, person);
    if (row === undefined) {
      if (sign < 0) return;
      row = { events: 0, hits: new Array<number>(this.rules.buckets.length).fill(0) };
      people.set(person, row);
      if (!linked) this.periodsOf(person).add(index);
    }
    this.rules.tally(counts, row.events, row.hits, linked, -1);
    row.events += sign;
    for (const m of matched) row.hits[m]! += sign;
    this.rules.tally(counts, row.events, row.hits, linked, 1);
    if (row.events === 0) {
      people.delete(person);
      if (people.size === 0) this.rows.delete(index);
      if (!linked) this.dropPeriod(person, index);
    }
  }

  /** An anonymous person's rows join another's, in every period. */
  merge(from: string, into: string): void {
    const periods = this.anonPeriods.get(from);
    if (periods === undefined) return;
    this.anonPeriods.delete(from);
    const target = this.periodsOf(into);
    for (const index of periods) {
      const people = this.rows.get(index)!;
      const moved = people.get(from)!;
      const counts = this.counts(index);
      this.rowChanged(index, from);
      this.rowChanged(index, into);
      people.delete(from);
      this.rules.tally(counts, moved.events, moved.hits, false, -1);
      const row = people.get(into);
      if (row === undefined) {
        people.set(into, moved);
        target.add(index);
        this.rules.tally(counts, moved.events, moved.hits, false, 1);
      } else {
        this.rules.tally(counts, row.events, row.hits, false, -1);
        row.events += moved.events;
        for (let i = 0; i < row.hits.length; i++) row.hits[i]! += moved.hits[i]!;
        this.rules.tally(counts, row.events, row.hits, false, 1);
      }
    }
  }

  unattributed(index: number): void {
    this.counts(index)[this.rules.columns]! += 1;
  }

  /** Freezes the periods the watermark closed. */
  closeAt(watermark: number): void {
    const through = this.calendar.closedThrough(this.kind, watermark, this.close);
    if (through <= this.closedThrough) return;
    for (const index of this.open) {
      if (index > through) continue;
      this.frozen.set(index, [...this.current.get(index)!]);
      this.changedCounts.add(index);
      this.open.delete(index);
    }
    this.closedThrough = through;
  }

  /** A person row changed: tracked for days only (a week's or a month's rows are sums of its days': `derivedRows`). */
  rowChanged(index: number, person: string): void {
    if (this.kind !== 'day') return;
    let people = this.changedRows.get(index);
    if (people === undefined) this.changedRows.set(index, (people = new Set()));
    people.add(person);
  }

  private periodsOf(person: string): Set<number> {
    let periods = this.anonPeriods.get(person);
    if (periods === undefined) this.anonPeriods.set(person, (periods = new Set()));
    return periods;
  }

  private dropPeriod(person: string, index: number): void {
    const periods = this.anonPeriods.get(person);
    if (periods === undefined) return;
    periods.delete(index);
    if (periods.size === 0) this.anonPeriods.delete(person);
  }
}

export interface CounterOptions {
  /** Zones counted besides the config's (`activity.timeZone`, `activity.extraTimeZones`). */
  extraTimeZones?: readonly string[];
}

export class ActivityCounter {
  readonly activity: ActivityConfig;
  readonly rules: BucketRules;
  /** The zone answers are in unless a request asks for another. */
  readonly timeZone: string;
  /** Every zone counted. */
  readonly zones: readonly string[];
  private readonly tables: PeriodTable[] = [];
  /** What it reads of an event (its identifier keys, the buckets it matches), and how that is stored. */
  readonly features: FeatureRules;
  private readonly parent = new Map<string, string>();
  private readonly size = new Map<string, number>();
  private readonly pending = new Map<number, Pending>();
  /** Identifier keys whose parent or size changed, and events whose pending entry did, since the last `takeChanges`. */
  private readonly changedKeys = new Set<string>();
  private readonly changedPending = new Set<number>();
  private readonly counted = { events: 0, untimed: 0, unattributed: 0 };
  private watermarkMs = -Infinity;
  /**
   * The input being applied: its seq, its anonymous identifier keys, whether it was resolved, and
   * its event until it is placed: with its user when resolved in its own input (most events), else
   * with its anonymous person at the end of the input.
   */
  private current: { seq: number; keys: readonly string[]; resolved: boolean; unplaced: Pending | undefined } | undefined;

  /** `config`: the resolved config (its `internal` kinds and junk rules, and its `activity`). */
  constructor(config: Config, options: CounterOptions = {}) {
    this.activity = config.activity ?? resolveActivityConfig({});
    this.features = new FeatureRules(config);
    this.rules = this.features.rules;
    this.timeZone = this.activity.timeZone;
    const extra = (options.extraTimeZones ?? []).map((zone) => requestedZone(zone));
    this.zones = [...new Set([this.timeZone, ...this.activity.extraTimeZones, ...extra])];
    for (const zone of this.zones) {
      const calendar = new ZoneCalendar(zone);
      for (const kind of PERIOD_KINDS) this.tables.push(new PeriodTable(calendar, kind, this.activity.close[kind], this.rules));
    }
  }

  /** The greatest event time seen (epoch ms), -Infinity before any. */
  get watermark(): number {
    return this.watermarkMs;
  }

  get summary(): CounterSummary {
    return { ...this.counted, anonymous: this.pending.size };
  }

  /** Step 1 of input S: an accepted event counts for its person (anonymous until resolved). `timeMs` undefined: it has no time. */
  input(seq: number, event: XrefEvent, timeMs: number | undefined): void {
    this.inputOf(seq, this.features.of(event), timeMs);
  }

  /** `input`, given what the counter reads of the event (event-features.ts: as the read model stores it). */
  inputOf(seq: number, features: EventFeatures, timeMs: number | undefined): void {
    if (this.current !== undefined && this.current.seq !== seq) this.endOfInput(this.current.seq);
    this.counted.events++;
    const timed = timeMs !== undefined && Number.isFinite(timeMs);
    if (!timed) this.counted.untimed++;
    else if (timeMs > this.watermarkMs) this.watermarkMs = timeMs;
    const keys = features.keys;
    if (keys === undefined) {
      this.counted.unattributed++;
      if (timed) for (const table of this.tables) table.unattributed(table.calendar.periodOf(table.kind, timeMs));
      return;
    }
    // an event with no third-party identifier (its user's id only) stands alone until its resolution
    const unplaced = timed ? { anchor: keys[0] ?? `#${seq}`, time: timeMs, matched: features.matched } : undefined;
    this.current = { seq, keys, resolved: false, unplaced };
  }

  /**
   * Step 2: the engine placed event `eventSeq` with `user` while applying input S: its activity
   * moves from its anonymous person to the user, in every period (closed ones keep their frozen
   * counts). An event already resolved, untimed or never counted is left as it is.
   */
  resolved(_seq: number, eventSeq: number, user: UserRef): void {
    const to = `${USER}${user.kind}:${user.id}`;
    const current = this.current;
    if (current?.seq === eventSeq && !current.resolved) {
      current.resolved = true;
      const event = current.unplaced;
      current.unplaced = undefined;
      if (event !== undefined) for (const table of this.tables) table.add(table.calendar.periodOf(table.kind, event.time), to, event.matched, 1);
      return;
    }
    const pending = this.pending.get(eventSeq);
    if (pending === undefined) return;
    this.pending.delete(eventSeq);
    this.changedPending.add(eventSeq);
    const from = ANON + this.find(pending.anchor);
    for (const table of this.tables) {
      const index = table.calendar.periodOf(table.kind, pending.time);
      table.add(index, from, pending.matched, -1);
      table.add(index, to, pending.matched, 1);
    }
  }

  /**
   * Step 2 too: an unlink took event `eventSeq` back from `user` while applying input S
   * (docs/activity.md, unlinks): its activity leaves the user, in every period (closed ones keep
   * their frozen counts), and counts for its anonymous person again, the cluster of its first
   * identifier (it joins none: it is not at its own input), until a resolution places it again.
   * `event` and `timeMs` are what `input` had. An event counted for no user (untimed, junk-only,
   * still anonymous) is left as it is. Call it before the resolutions S decided.
   */
  retracted(seq: number, eventSeq: number, user: UserRef, event: XrefEvent, timeMs: number | undefined): void {
    this.retractedOf(seq, eventSeq, user, this.features.of(event), timeMs);
  }

  /** `retracted`, given what the counter reads of the event. */
  retractedOf(_seq: number, eventSeq: number, user: UserRef, features: EventFeatures, timeMs: number | undefined): void {
    if (timeMs === undefined || !Number.isFinite(timeMs) || this.pending.has(eventSeq)) return;
    const keys = features.keys;
    if (keys === undefined) return;
    const placed: Pending = { anchor: keys[0] ?? `#${eventSeq}`, time: timeMs, matched: features.matched };
    this.pending.set(eventSeq, placed);
    this.changedPending.add(eventSeq);
    const from = `${USER}${user.kind}:${user.id}`;
    const to = ANON + this.find(placed.anchor);
    for (const table of this.tables) {
      const index = table.calendar.periodOf(table.kind, timeMs);
      table.add(index, from, placed.matched, -1);
      table.add(index, to, placed.matched, 1);
    }
  }

  /** Step 3: the end of input S. */
  endOfInput(seq: number): void {
    const current = this.current;
    if (current !== undefined && current.seq <= seq) {
      this.current = undefined;
      if (!current.resolved) for (let i = 1; i < current.keys.length; i++) this.union(current.keys[0]!, current.keys[i]!);
      const event = current.unplaced;
      if (event !== undefined) {
        // still unresolved: it counts for its anonymous person
        this.pending.set(current.seq, event);
        this.changedPending.add(current.seq);
        const person = ANON + this.find(event.anchor);
        for (const table of this.tables) table.add(table.calendar.periodOf(table.kind, event.time), person, event.matched, 1);
      }
    }
    for (const table of this.tables) table.closeAt(this.watermarkMs);
  }

  /** The periods of a range and their counts, ascending (docs/activity.md, the answer). */
  series(request: SeriesRequest): ActivitySeries {
    const plan = planSeries(request, this.source);
    const table = this.table(plan.period, plan.zone);
    return seriesOf(plan, this.rules.columns, (index) => ({ current: table.current.get(index), frozen: table.frozen.get(index) }));
  }

  /** The start of the last closed period (undefined: none closed yet). */
  closedThrough(period: PeriodKind, tz?: string): string | undefined {
    const table = this.table(period, tz);
    return Number.isFinite(table.closedThrough) ? periodStart(period, table.closedThrough) : undefined;
  }

  /** Every person's presence in every period, zone by zone: what the read model will store. */
  *rows(): Generator<PersonPeriodRow> {
    for (const table of this.tables) {
      for (const [index, people] of [...table.rows].sort((a, b) => a[0] - b[0])) {
        const start = periodStart(table.kind, index);
        for (const [person, row] of people) {
          const hits: Record<string, number> = {};
          row.hits.forEach((n, i) => {
            if (n > 0) hits[this.rules.buckets[i]!] = n;
          });
          yield { timeZone: table.calendar.zone, period: table.kind, start, person, linked: isLinked(person), events: row.events, hits };
        }
      }
    }
  }

  /** A compact image of the whole state (JSON-serializable), in a canonical order: the same calls give the same image. */
  state(): CounterState {
    const byKey = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const byIndex = <T extends [number, ...unknown[]]>(a: T, b: T) => a[0] - b[0];
    const scalars = this.scalars();
    return {
      ...scalars,
      parents: [...this.parent].sort(byKey),
      sizes: [...this.size].sort(byKey),
      pending: [...this.pending].map(([seq, p]): [number, string, number, number[]] => [seq, p.anchor, p.time, [...p.matched]]).sort(byIndex),
      tables: this.tables.map((table, i) => ({
        ...scalars.tables[i]!,
        rows: [...table.rows]
          .flatMap(([index, people]) => [...people].map(([person, row]): [number, string, number, number[]] => [index, person, row.events, [...row.hits]]))
          .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)),
        unattributed: [...table.current].filter(([, counts]) => counts[this.rules.columns]! > 0).map(([index, counts]): [number, number] => [index, counts[this.rules.columns]!]).sort(byIndex),
        frozen: [...table.frozen].map(([index, counts]): [number, number[]] => [index, [...counts]]).sort(byIndex),
      })),
    };
  }

  /** The state's small part: its config, watermark, summary, the input under way, and each table's bounds. */
  scalars(): CounterScalars {
    const current = this.current;
    return {
      version: 1,
      columns: this.rules.names(),
      zones: [...this.zones],
      watermark: Number.isFinite(this.watermarkMs) ? this.watermarkMs : null,
      summary: { ...this.counted },
      current: current === undefined ? null : [current.seq, [...current.keys], current.resolved, current.unplaced === undefined ? null : [current.unplaced.anchor, current.unplaced.time, [...current.unplaced.matched]]],
      tables: this.tables.map((table) => ({
        zone: table.calendar.zone,
        period: table.kind,
        closedThrough: Number.isFinite(table.closedThrough) ? table.closedThrough : null,
        extent: table.first <= table.last ? [table.first, table.last] : null,
      })),
    };
  }

  /**
   * What changed since the last call (or the counter's making or restoring): the day rows, counts,
   * identifier keys and pending events to write over their stored copies, and the scalars. Written
   * over a stored `state()` of the earlier point, they give the `state()` of this one (its week and
   * month rows are the sums of its day rows, `derivedRows`).
   */
  takeChanges(): CounterChanges {
    const rows: RowChange[] = [];
    const counts: CountChange[] = [];
    const zeros = new Array<number>(this.rules.columns + 1).fill(0);
    for (const table of this.tables) {
      const { zone } = table.calendar;
      const period = table.kind;
      for (const [index, people] of table.changedRows) {
        const stored = table.rows.get(index);
        for (const person of people) {
          const row = stored?.get(person);
          rows.push({ zone, period, index, person, events: row?.events ?? 0, hits: row === undefined ? [] : [...row.hits] });
        }
      }
      for (const index of table.changedCounts) {
        const frozen = table.frozen.get(index);
        counts.push({ zone, period, index, counts: [...(table.current.get(index) ?? zeros)], frozen: frozen === undefined ? null : [...frozen] });
      }
      table.changedRows.clear();
      table.changedCounts.clear();
    }
    const keys = [...this.changedKeys].map((id): KeyChange => ({ id, parent: this.parent.get(id) ?? null, size: this.size.get(id) ?? null }));
    const pending = [...this.changedPending].map((seq): PendingChange => {
      const p = this.pending.get(seq);
      return { seq, pending: p === undefined ? null : [p.anchor, p.time, [...p.matched]] };
    });
    this.changedKeys.clear();
    this.changedPending.clear();
    return { rows, counts, keys, pending, scalars: this.scalars() };
  }

  /** A counter continuing from `state()`, under the same config (buckets and zones). */
  static restore(config: Config, state: CounterState, options: CounterOptions = {}): ActivityCounter {
    const counter = new ActivityCounter(config, options);
    const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i]);
    if (state.version !== 1 || !same(state.columns, counter.rules.names()) || !same(state.zones, counter.zones)) {
      throw new XrefError('XREF_INVALID_CONFIG', `activity state was counted with buckets ${quote(state.columns)} in zones ${quote(state.zones)}, not ${quote(counter.rules.names())} in ${quote(counter.zones)}: rebuild it from the log`, { field: 'activity' });
    }
    counter.watermarkMs = state.watermark ?? -Infinity;
    Object.assign(counter.counted, state.summary);
    for (const [key, parent] of state.parents) counter.parent.set(key, parent);
    for (const [root, n] of state.sizes) counter.size.set(root, n);
    for (const [seq, anchor, time, matched] of state.pending) counter.pending.set(seq, { anchor, time, matched });
    if (state.current !== null) {
      const [seq, keys, resolved, unplaced] = state.current;
      counter.current = { seq, keys: [...keys], resolved, unplaced: unplaced === null ? undefined : { anchor: unplaced[0], time: unplaced[1], matched: [...unplaced[2]] } };
    }
    state.tables.forEach((saved, i) => {
      const table = counter.tables[i]!;
      table.closedThrough = saved.closedThrough ?? -Infinity;
      for (const [index, counts] of saved.frozen) table.frozen.set(index, [...counts]);
      for (const [index, person, events, hits] of saved.rows) {
        const counts = table.counts(index);
        let people = table.rows.get(index);
        if (people === undefined) table.rows.set(index, (people = new Map()));
        people.set(person, { events, hits: [...hits] });
        if (!isLinked(person)) {
          let periods = table.anonPeriods.get(person);
          if (periods === undefined) table.anonPeriods.set(person, (periods = new Set()));
          periods.add(index);
        }
        counter.rules.tally(counts, events, hits, isLinked(person), 1);
      }
      for (const [index, n] of saved.unattributed) table.counts(index)[counter.rules.columns] = n;
      if (saved.extent !== null) [table.first, table.last] = [Math.min(table.first, saved.extent[0]), Math.max(table.last, saved.extent[1])];
    });
    counter.takeChanges();
    return counter;
  }

  /**
   * Takes each period's counts now as stored (`[zone, period, index, counts]`, the junk-only
   * events last) over those its person rows give. They differ only where a person was forgotten
   * (docs/read-model.md): the person's rows are deleted, what they counted stays, and the counts
   * go on from there. Nothing is marked changed.
   */
  adoptCounts(stored: Iterable<readonly [string, PeriodKind, number, readonly number[]]>): void {
    for (const [zone, period, index, counts] of stored) {
      const table = this.tables.find((t) => t.calendar.zone === zone && t.kind === period);
      if (table === undefined || counts.length !== this.rules.columns + 1) continue;
      const current = table.counts(index);
      for (let i = 0; i < current.length; i++) current[i] = counts[i]!;
      table.changedCounts.delete(index);
    }
  }

  /** The counts as an answer reads them. */
  private get source(): CountsSource {
    return {
      columns: this.rules.names(),
      timeZone: this.timeZone,
      zones: this.zones,
      extent: (zone, period) => this.table(period, zone),
    };
  }

  private table(period: PeriodKind, tz: string | undefined): PeriodTable {
    const zone = zoneOf(tz, this);
    return this.tables.find((table) => table.calendar.zone === zone && table.kind === period)!;
  }

  private find(key: string): string {
    let at = key;
    for (;;) {
      const up = this.parent.get(at);
      if (up === undefined) return at;
      const above = this.parent.get(up);
      if (above !== undefined) {
        this.parent.set(at, above); // path halving
        this.changedKeys.add(at);
      }
      at = above ?? up;
    }
  }

  /** Two identifiers are one anonymous person: the smaller person's activity joins the larger's. */
  private union(a: string, b: string): void {
    let big = this.find(a);
    let small = this.find(b);
    if (big === small) return;
    let bigSize = this.size.get(big) ?? 1;
    let smallSize = this.size.get(small) ?? 1;
    if (smallSize > bigSize) [big, small, bigSize, smallSize] = [small, big, smallSize, bigSize];
    this.parent.set(small, big);
    this.size.delete(small);
    this.size.set(big, bigSize + smallSize);
    this.changedKeys.add(small);
    this.changedKeys.add(big);
    for (const table of this.tables) table.merge(ANON + small, ANON + big);
  }
}
