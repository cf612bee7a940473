import type { CounterChanges, CounterScalars, CounterState } from './activity-counter.ts';
import type { PeriodKind } from './activity-config.ts';
import { periodOfDay } from './period-index.ts';

/**
 * A counter's stored image, kept up to date by its changes (`ActivityCounter.takeChanges`): what
 * the read model's activity tables hold, in memory. `state()` gives the image `restore` takes; it
 * equals the counter's own `state()` at the point of the last changes applied. The reference the
 * database adapters are tested against.
 */
export class CounterImage {
  private scalars: CounterScalars | undefined;
  /** Per table (`zone period`): person rows by `index person`, counts by index. */
  private readonly rows = new Map<string, Map<string, [number, string, number, number[]]>>();
  private readonly counts = new Map<string, Map<number, { counts: number[]; frozen: number[] | null }>>();
  private readonly keys = new Map<string, { parent: string | null; size: number | null }>();
  private readonly pending = new Map<number, [string, number, number[]]>();

  apply(changes: CounterChanges): void {
    for (const row of changes.rows) {
      const table = at(this.rows, `${row.zone} ${row.period}`);
      const key = `${row.index} ${row.person}`;
      if (row.events === 0) table.delete(key);
      else table.set(key, [row.index, row.person, row.events, [...row.hits]]);
    }
    for (const count of changes.counts) at(this.counts, `${count.zone} ${count.period}`).set(count.index, { counts: [...count.counts], frozen: count.frozen === null ? null : [...count.frozen] });
    for (const key of changes.keys) {
      if (key.parent === null && key.size === null) this.keys.delete(key.id);
      else this.keys.set(key.id, { parent: key.parent, size: key.size });
    }
    for (const p of changes.pending) {
      if (p.pending === null) this.pending.delete(p.seq);
      else this.pending.set(p.seq, [p.pending[0], p.pending[1], [...p.pending[2]]]);
    }
    this.scalars = changes.scalars;
  }

  /** The image (undefined before any changes). */
  state(): CounterState | undefined {
    const scalars = this.scalars;
    if (scalars === undefined) return undefined;
    return counterState(scalars, {
      keys: [...this.keys].map(([id, k]) => [id, k.parent, k.size]),
      pending: [...this.pending].map(([seq, p]) => [seq, ...p]),
      rows: (zone) => [...(this.rows.get(`${zone} day`)?.values() ?? [])].map(([index, person, events, hits]) => [index, person, events, [...hits]]),
      counts: (zone, period) => [...(this.counts.get(`${zone} ${period}`) ?? [])].map(([index, c]) => [index, c.counts, c.frozen]),
    });
  }
}

/** What a store holds of a counter besides its scalars, as rows. */
export interface StoredCounter {
  /** [key, parent, size]. */
  keys: Array<[string, string | null, number | null]>;
  /** [seq, anchor, time, matched]. */
  pending: Array<[number, string, number, number[]]>;
  /** A zone's person rows per day: [day index, person, events, hits]. */
  rows(zone: string, period: 'day'): Array<[number, string, number, number[]]>;
  /** A table's counts: [index, counts (the junk-only events last), frozen]. */
  counts(zone: string, period: string): Array<[number, number[], number[] | null]>;
}

/** The `CounterState` of stored rows, in `state()`'s canonical order. */
export function counterState(scalars: CounterScalars, stored: StoredCounter): CounterState {
  const byKey = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  const byIndex = <T extends [number, ...unknown[]]>(a: T, b: T) => a[0] - b[0];
  const { tables, ...rest } = scalars;
  const unattributed = scalars.columns.length;
  return {
    ...rest,
    parents: stored.keys.flatMap(([id, parent]): [string, string][] => (parent === null ? [] : [[id, parent]])).sort(byKey),
    sizes: stored.keys.flatMap(([id, , size]): [string, number][] => (size === null ? [] : [[id, size]])).sort(byKey),
    pending: stored.pending.map(([seq, anchor, time, matched]): [number, string, number, number[]] => [seq, anchor, time, [...matched]]).sort(byIndex),
    tables: tables.map((bounds) => {
      const counts = stored.counts(bounds.zone, bounds.period);
      const days = stored.rows(bounds.zone, 'day');
      return {
        ...bounds,
        rows: (bounds.period === 'day' ? days : derivedRows(bounds.period, days)).sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)),
        unattributed: counts.filter(([, c]) => (c[unattributed] ?? 0) > 0).map(([index, c]): [number, number] => [index, c[unattributed]!]).sort(byIndex),
        frozen: counts.flatMap(([index, , frozen]): [number, number[]][] => (frozen === null ? [] : [[index, [...frozen]]])).sort(byIndex),
      };
    }),
  };
}

/**
 * A week's or a month's person rows from the day rows of its zone: a person is in a longer period
 * with the events of their days in it (the counter adds every event to each of its periods, so the
 * sums are exact).
 */
export function derivedRows(period: PeriodKind, days: ReadonlyArray<[number, string, number, readonly number[]]>): Array<[number, string, number, number[]]> {
  const rows = new Map<string, [number, string, number, number[]]>();
  for (const [day, person, events, hits] of days) {
    const index = periodOfDay(period, day);
    const key = `${index} ${person}`;
    const row = rows.get(key);
    if (row === undefined) rows.set(key, [index, person, events, [...hits]]);
    else {
      row[2] += events;
      hits.forEach((n, i) => (row[3][i] = (row[3][i] ?? 0) + n));
    }
  }
  return [...rows.values()];
}

function at<K, I, V>(map: Map<K, Map<I, V>>, key: K): Map<I, V> {
  let inner = map.get(key);
  if (inner === undefined) map.set(key, (inner = new Map()));
  return inner;
}
