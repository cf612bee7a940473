import { InvalidConfigError, XrefError, quote } from '../domain/errors.ts';

// No date library here: the config module loads this, and the `xref` entry point stays light.

/**
 * The `activity` key of the config file (docs/activity.md): the zone periods are counted in, when
 * periods close, and the buckets. Validated here into plain data (patterns stay strings, compiled
 * by bucket-rules.ts), so that the resolved config stays JSON and can be frozen.
 */

export const PERIOD_KINDS = ['day', 'week', 'month'] as const;
export type PeriodKind = (typeof PERIOD_KINDS)[number];

export function isPeriodKind(value: unknown): value is PeriodKind {
  return typeof value === 'string' && (PERIOD_KINDS as readonly string[]).includes(value);
}

/** The canonical name of an IANA zone (`utc` → `UTC`, `europe/paris` → `Europe/Paris`), or undefined if there is no such zone. */
export function canonicalZone(zone: unknown): string | undefined {
  if (typeof zone !== 'string' || zone.length === 0) return undefined;
  // offsets like "+02:00" are not zones with daylight-saving rules: refused
  if (!/^[A-Za-z]/.test(zone)) return undefined;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** The canonical name of a zone a request (or a caller) names, or an XrefError naming `named` (field `tz`). */
export function requestedZone(zone: unknown, named = 'tz'): string {
  const canonical = canonicalZone(zone);
  if (canonical === undefined) throw new XrefError('XREF_INVALID_ARGUMENT', `${named} must be an IANA time zone (e.g. UTC, Europe/Paris), got ${quote(zone)}`, { field: 'tz' });
  return canonical;
}

/** A value `equals` compares with (strictly: `"1"` is not `1`). */
export type FieldValue = string | number | boolean | null;

export interface BucketRuleInput {
  /** Whether the person is a known user (true) or an anonymous one (false). */
  linked?: boolean;
  /** A dotted path into the event, e.g. `data.site`, `category`, `context.page.path`. */
  field?: string;
  /** The value (or any of the values) at `field`. */
  equals?: FieldValue | FieldValue[];
  /** The event's name: exact, or a regular expression written `/…/` (flags i, m, s, u may follow). */
  name?: string;
}

export interface ActivityConfigInput {
  /** The IANA zone periods are counted in (default UTC). */
  timeZone?: string;
  /** Further zones counted too, that a request may ask for (`tz`). */
  extraTimeZones?: string[];
  /** Per period kind, how many periods after its end a period closes (defaults day 2, week 1, month 1). */
  close?: Partial<Record<PeriodKind, number>>;
  buckets?: Record<string, BucketRuleInput>;
  /** Buckets counting the distinct people of several buckets. */
  aggregates?: Record<string, string[]>;
}

export interface BucketRule {
  readonly bucket: string;
  readonly linked?: boolean;
  /** `field` split on dots. */
  readonly field?: readonly string[];
  readonly equals?: readonly FieldValue[];
  readonly name?: { readonly exact: string } | { readonly pattern: string; readonly flags: string };
}

export interface Aggregate {
  readonly bucket: string;
  readonly members: readonly string[];
}

/** The validated `activity` config. */
export interface ActivityConfig {
  readonly timeZone: string;
  readonly extraTimeZones: readonly string[];
  readonly close: Readonly<Record<PeriodKind, number>>;
  readonly buckets: readonly BucketRule[];
  readonly aggregates: readonly Aggregate[];
}

/** The answer's key without a bucket: every active person. */
export const ALL = 'all';

export const DEFAULT_CLOSE: Readonly<Record<PeriodKind, number>> = Object.freeze({ day: 2, week: 1, month: 1 });

const KEYS = ['timeZone', 'extraTimeZones', 'close', 'buckets', 'aggregates'];
const RULE_KEYS = ['linked', 'field', 'equals', 'name'];
const BUCKET_NAME = /^[A-Za-z0-9_.-]+$/;
const PATTERN = /^\/(.*)\/([a-z]*)$/s;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function zone(field: string, value: unknown): string {
  const canonical = canonicalZone(value);
  if (canonical === undefined) throw new InvalidConfigError(field, value, 'must be an IANA time zone (e.g. UTC, Europe/Paris)');
  return canonical;
}

function isFieldValue(value: unknown): value is FieldValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** `/…/flags` → pattern and flags; undefined for an exact name. Throws on a pattern that does not compile. */
export function namePattern(field: string, value: string): { pattern: string; flags: string } | undefined {
  const m = value.length >= 2 ? PATTERN.exec(value) : null;
  if (m === null) return undefined;
  const [, pattern, flags] = m as unknown as [string, string, string];
  if (/[^imsu]/.test(flags)) throw new InvalidConfigError(field, value, 'must be a name, or a regular expression /…/ with flags among i, m, s, u');
  try {
    new RegExp(pattern, flags);
  } catch (cause) {
    throw new InvalidConfigError(field, value, `is not a valid regular expression (${(cause as Error).message})`);
  }
  return { pattern, flags };
}

function rule(bucket: string, input: unknown): BucketRule {
  const at = `activity.buckets.${bucket}`;
  if (!isRecord(input)) throw new InvalidConfigError(at, input, 'must be an object with linked, field and equals, or name');
  for (const key of Object.keys(input)) {
    if (!RULE_KEYS.includes(key)) throw new InvalidConfigError(`${at}.${key}`, input[key], `is not a bucket rule key (known: ${RULE_KEYS.join(', ')})`);
  }
  const out: { bucket: string; linked?: boolean; field?: string[]; equals?: FieldValue[]; name?: BucketRule['name'] } = { bucket };
  if (input.linked !== undefined) {
    if (typeof input.linked !== 'boolean') throw new InvalidConfigError(`${at}.linked`, input.linked, 'must be true (known users) or false (anonymous people)');
    out.linked = input.linked;
  }
  if (input.field !== undefined || input.equals !== undefined) {
    const field = input.field;
    if (typeof field !== 'string' || field.split('.').some((part) => part.length === 0)) {
      throw new InvalidConfigError(`${at}.field`, field, 'must be a dotted path into the event (e.g. data.site), given with equals');
    }
    const equals = Array.isArray(input.equals) ? input.equals : [input.equals];
    if (input.equals === undefined || equals.length === 0 || !equals.every(isFieldValue)) {
      throw new InvalidConfigError(`${at}.equals`, input.equals, 'must be a string, number, boolean or null, or a non-empty list of them, given with field');
    }
    out.field = field.split('.');
    out.equals = equals as FieldValue[];
  }
  if (input.name !== undefined) {
    if (typeof input.name !== 'string' || input.name.length === 0) throw new InvalidConfigError(`${at}.name`, input.name, 'must be an event name, or a regular expression written /…/');
    const pattern = namePattern(`${at}.name`, input.name);
    out.name = pattern ?? { exact: input.name };
  }
  if (out.linked === undefined && out.field === undefined && out.name === undefined) {
    throw new InvalidConfigError(at, input, 'must have at least one of linked, field (with equals), name');
  }
  return out;
}

function bucketName(field: string, name: string): void {
  if (!BUCKET_NAME.test(name)) throw new InvalidConfigError(field, name, 'must be a bucket name of letters, digits, _ . -');
  if (name === ALL) throw new InvalidConfigError(field, name, `is reserved: "${ALL}" is the answer's key for every active person`);
}

/** Validates the `activity` config and fills its defaults. */
export function resolveActivityConfig(input: unknown = {}): ActivityConfig {
  if (!isRecord(input)) throw new InvalidConfigError('activity', input, 'must be an object { timeZone, extraTimeZones, close, buckets, aggregates }');
  for (const key of Object.keys(input)) {
    if (!KEYS.includes(key)) throw new InvalidConfigError(`activity.${key}`, input[key], `is not an activity key (known: ${KEYS.join(', ')})`);
  }
  const timeZone = input.timeZone === undefined ? 'UTC' : zone('activity.timeZone', input.timeZone);
  const extra = input.extraTimeZones ?? [];
  if (!Array.isArray(extra)) throw new InvalidConfigError('activity.extraTimeZones', extra, 'must be a list of IANA time zones');
  const extraTimeZones = [...new Set(extra.map((z, i) => zone(`activity.extraTimeZones[${i}]`, z)))].filter((z) => z !== timeZone);

  const closeInput = input.close ?? {};
  if (!isRecord(closeInput)) throw new InvalidConfigError('activity.close', closeInput, 'must be an object { day, week, month } of periods');
  const close = { ...DEFAULT_CLOSE };
  for (const [kind, value] of Object.entries(closeInput)) {
    if (!(PERIOD_KINDS as readonly string[]).includes(kind)) throw new InvalidConfigError(`activity.close.${kind}`, value, `is not a period (known: ${PERIOD_KINDS.join(', ')})`);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new InvalidConfigError(`activity.close.${kind}`, value, `must be a non-negative integer (${kind}s after the ${kind} ends)`);
    }
    close[kind as PeriodKind] = value;
  }

  const bucketsInput = input.buckets ?? {};
  if (!isRecord(bucketsInput)) throw new InvalidConfigError('activity.buckets', bucketsInput, 'must be an object of bucket name → rule');
  const buckets = Object.entries(bucketsInput).map(([name, value]) => {
    bucketName('activity.buckets key', name);
    return rule(name, value);
  });

  const aggregatesInput = input.aggregates ?? {};
  if (!isRecord(aggregatesInput)) throw new InvalidConfigError('activity.aggregates', aggregatesInput, 'must be an object of aggregate name → list of buckets');
  const known = new Set(buckets.map((b) => b.bucket));
  const aggregates = Object.entries(aggregatesInput).map(([name, members]): Aggregate => {
    bucketName('activity.aggregates key', name);
    if (known.has(name)) throw new InvalidConfigError('activity.aggregates key', name, 'is already a bucket name');
    if (!Array.isArray(members) || members.length === 0) throw new InvalidConfigError(`activity.aggregates.${name}`, members, 'must be a non-empty list of bucket names');
    members.forEach((member, i) => {
      if (typeof member !== 'string' || !known.has(member)) {
        throw new InvalidConfigError(`activity.aggregates.${name}[${i}]`, member, `must name a bucket (known: ${[...known].join(', ') || 'none'})`);
      }
    });
    return { bucket: name, members: [...new Set(members as string[])] };
  });
  return { timeZone, extraTimeZones, close, buckets, aggregates };
}
