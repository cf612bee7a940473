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

/**
 * An event's features under one config (its junk rules, internal kinds and bucket rules): worked
 * out by the projection as it writes the event and handed to the counting in memory
 * (src/projection/activity-feed.ts), or from the event's body where the counting reads the
 * read model.
 */
export class FeatureRules {
  readonly rules: BucketRules;
  private readonly isJunk: JunkRule;
  private readonly internal: ReadonlySet<string>;

  constructor(config: Config) {
    this.rules = new BucketRules(config.activity ?? resolveActivityConfig({}));
    this.isJunk = junkRule(config.junkValues, config.junkPattern === undefined ? undefined : new RegExp(config.junkPattern));
    this.internal = new Set(config.internal);
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
}
