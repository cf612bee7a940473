import type { XrefEvent } from '../domain/envelope.ts';
import { ALL, type ActivityConfig, type BucketRule, type FieldValue } from './activity-config.ts';

/**
 * The buckets of the `activity` config, compiled. A rule has two parts:
 * - the event part (`field`/`equals`, `name`), decided per event: `match(event)`;
 * - the person part (`linked`), decided per person: a user is linked, an anonymous person is not.
 * A person is in a bucket in a period when the person part holds and at least one of their events
 * in the period matches the event part. An aggregate holds a person who is in any of its buckets.
 *
 * The answer's columns are numbered: 0 is `all`, then the buckets in config order, then the aggregates.
 */
export class BucketRules {
  /** Bucket names, in config order. */
  readonly buckets: readonly string[];
  /** Aggregate names, in config order. */
  readonly aggregates: readonly string[];
  /** Per bucket: the `linked` a person needs (undefined: any). */
  readonly linked: readonly (boolean | undefined)[];
  /** Per aggregate: the indexes of its buckets. */
  readonly members: readonly (readonly number[])[];
  private readonly tests: ((event: XrefEvent) => boolean)[];
  private readonly columnOf: ReadonlyMap<string, number>;

  constructor(config: Pick<ActivityConfig, 'buckets' | 'aggregates'>) {
    this.buckets = config.buckets.map((rule) => rule.bucket);
    this.aggregates = config.aggregates.map((aggregate) => aggregate.bucket);
    this.linked = config.buckets.map((rule) => rule.linked);
    this.members = config.aggregates.map((aggregate) => aggregate.members.map((member) => this.buckets.indexOf(member)));
    this.tests = config.buckets.map(eventTest);
    this.columnOf = new Map([ALL, ...this.buckets, ...this.aggregates].map((name, i) => [name, i]));
  }

  /** Columns of an answer: `all`, the buckets, the aggregates. */
  get columns(): number {
    return 1 + this.buckets.length + this.aggregates.length;
  }

  /** The column of a bucket, aggregate or `all`; undefined for a name that is none of these. */
  column(name: string): number | undefined {
    return this.columnOf.get(name);
  }

  /** Every name a request may ask for. */
  names(): string[] {
    return [...this.columnOf.keys()];
  }

  /** The indexes of the buckets whose event part this event matches. */
  match(event: XrefEvent): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.tests.length; i++) if (this.tests[i]!(event)) out.push(i);
    return out;
  }

  /**
   * Adds (sign 1) or takes away (sign -1) one person's presence in a period to the counts of its
   * columns. `events`: the person's events in the period; `hits[i]`: how many of them match bucket
   * i's event part; `linked`: whether the person is a known user.
   */
  tally(counts: number[], events: number, hits: ArrayLike<number>, linked: boolean, sign: 1 | -1): void {
    if (events === 0) return;
    counts[0]! += sign;
    const n = this.buckets.length;
    for (let i = 0; i < n; i++) if (this.isIn(i, hits, linked)) counts[1 + i]! += sign;
    // loops, not some(): this runs twice per event and period kind
    for (let a = 0; a < this.members.length; a++) {
      const members = this.members[a]!;
      for (let m = 0; m < members.length; m++) {
        if (this.isIn(members[m]!, hits, linked)) {
          counts[1 + n + a]! += sign;
          break;
        }
      }
    }
  }

  private isIn(bucket: number, hits: ArrayLike<number>, linked: boolean): boolean {
    const wants = this.linked[bucket];
    return hits[bucket]! > 0 && (wants === undefined || wants === linked);
  }
}

/** The event part of a rule: its fields ANDed (a rule of `linked` alone matches every event). */
function eventTest(rule: BucketRule): (event: XrefEvent) => boolean {
  const checks: ((event: XrefEvent) => boolean)[] = [];
  if (rule.field !== undefined) {
    const path = rule.field;
    const wanted = new Set<FieldValue>(rule.equals);
    checks.push((event) => {
      const value = valueAt(event, path);
      return value !== undefined && wanted.has(value);
    });
  }
  const name = rule.name;
  if (name !== undefined) {
    if ('exact' in name) checks.push((event) => event.name === name.exact);
    else {
      const pattern = new RegExp(name.pattern, name.flags);
      checks.push((event) => event.name !== undefined && pattern.test(event.name));
    }
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  return (event) => checks.every((check) => check(event));
}

/** The value at a dotted path when it is a string, number, boolean or null (objects and lists never match). */
export function valueAt(event: XrefEvent, path: readonly string[]): FieldValue | undefined {
  let at: unknown = event;
  for (const part of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at) || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  if (at === null || typeof at === 'string' || typeof at === 'number' || typeof at === 'boolean') return at;
  return undefined;
}
