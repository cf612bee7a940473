import { createHash } from 'node:crypto';
import type { Config } from '../domain/config.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { idKey, junkRule, type JunkRule } from '../domain/identifiers.ts';
import { resolveActivityConfig } from './activity-config.ts';
import { BucketRules } from './bucket-rules.ts';

/**
 * What the counter reads of an event (docs/activity.md, who counts): the keys of its third-party
 * identifiers, junk left out (undefined when every identifier is junk: it counts for no one), and
 * the buckets whose event part it matches.
 */
export interface EventFeatures {
  readonly keys: readonly string[] | undefined;
  readonly matched: readonly number[];
}

/** Characters of the fingerprint that starts an encoded features text. */
export const FINGERPRINT_LENGTH = 8;
/** How features are worked out (the built-in junk values, the rules' semantics): one more when that changes, so that texts made before are not taken. */
const FEATURES_VERSION = 1;

/**
 * An event's features under one config (its junk rules, internal kinds and bucket rules). The
 * projection stores them beside each event's body, encoded with a fingerprint of what they were
 * worked out under, so that the counting reads them instead of parsing the body again; a text made
 * under another config does not decode (undefined) and the body is read instead.
 */
export class FeatureRules {
  readonly rules: BucketRules;
  /** What starts every text `encode` gives. */
  readonly fingerprint: string;
  private readonly isJunk: JunkRule;
  private readonly internal: ReadonlySet<string>;

  constructor(config: Config) {
    const activity = config.activity ?? resolveActivityConfig({});
    this.rules = new BucketRules(activity);
    this.isJunk = junkRule(config.junkValues, config.junkPattern === undefined ? undefined : new RegExp(config.junkPattern));
    this.internal = new Set(config.internal);
    const basis = JSON.stringify([FEATURES_VERSION, config.junkValues, config.junkPattern ?? null, [...config.internal].sort(), activity.buckets.map(({ field, equals, name }) => [field, equals, name])]);
    this.fingerprint = createHash('sha256').update(basis).digest('hex').slice(0, FINGERPRINT_LENGTH);
  }

  of(event: XrefEvent): EventFeatures {
    let usable = false;
    const keys: string[] = [];
    for (const kind in event.ids) {
      const value = event.ids[kind]!;
      if (this.isJunk(value)) continue;
      usable = true;
      if (!this.internal.has(kind)) keys.push(idKey(kind, value));
    }
    return { keys: usable ? keys : undefined, matched: this.rules.match(event) };
  }

  /** The features as stored: the fingerprint, then `[keys or null, matched]` as JSON. */
  encode(features: EventFeatures): string {
    return this.fingerprint + JSON.stringify([features.keys ?? null, features.matched]);
  }

  /** Whether `text` holds features made under this config. */
  stored(text: string | null | undefined): text is string {
    return text != null && text.startsWith(this.fingerprint);
  }

  /** Stored features, if they were made under this config. */
  decode(text: string | null | undefined): EventFeatures | undefined {
    if (!this.stored(text)) return undefined;
    const [keys, matched] = JSON.parse(text.slice(FINGERPRINT_LENGTH)) as [string[] | null, number[]];
    return { keys: keys ?? undefined, matched };
  }
}
