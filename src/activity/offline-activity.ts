import { type ConfigInput, resolveConfig } from '../domain/config.ts';
import { eventTime, validateEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import { defaultLimits, type Limits } from '../domain/limits.ts';
import { payloadRules, type PayloadRules } from '../domain/payload-rules.ts';
import { IdentityEngine } from '../engine/engine.ts';
import type { Resolved, Sink } from '../engine/outputs.ts';
import { ActivityCounter, type CounterOptions } from './activity-counter.ts';

/** What an offline run counted. */
export interface OfflineSummary {
  /** Events the engine accepted (each counted once). */
  events: number;
  /** Inputs that were not events, or that the payload rules refused. */
  rejected: number;
  /** Events whose id was seen before: the engine drops them, and so does the count. */
  duplicates: number;
  /** Accepted events without a timestamp: they count in no period. */
  untimed: number;
  /** Accepted junk-only events: they count for no person. */
  unattributed: number;
  /** Accepted events that never reached a user: they count as anonymous people. */
  anonymous: number;
}

export interface OfflineActivityOptions extends CounterOptions {
  limits?: Limits;
}

/**
 * The offline oracle of the activity counts: the offline IdentityEngine applied to a log in order,
 * with an ActivityCounter fed as the streaming side feeds it (docs/activity.md, the incremental
 * model). Input N of the log (rejected ones included) is seq N.
 */
export class OfflineActivity {
  readonly counter: ActivityCounter;
  readonly rejected: { index: number; error: XrefError }[] = [];
  private readonly engine: IdentityEngine;
  private readonly rules: PayloadRules;
  private readonly limits: Limits;
  /** The resolutions the engine decided during the current ingest (its Sink calls are synchronous). */
  private readonly decided: Resolved[] = [];
  private duplicates = 0;
  private seq = 0;

  constructor(config: ConfigInput = {}, options: OfflineActivityOptions = {}) {
    const resolved = resolveConfig(config);
    this.limits = options.limits ?? defaultLimits();
    this.rules = payloadRules(resolved);
    this.counter = new ActivityCounter(resolved, options);
    const decided = this.decided;
    const sink: Sink = { resolved: (output) => void decided.push(output), unmatched: () => {}, audit: () => {} };
    this.engine = new IdentityEngine({ config: resolved, sink });
  }

  /** Applies one raw input. Returns the error when it was rejected. */
  add(raw: unknown, bytes?: number): XrefError | undefined {
    const seq = ++this.seq;
    try {
      const event = validateEvent(raw, this.limits, bytes);
      this.rules.check(event);
      this.decided.length = 0;
      const time = eventTime(event);
      if (this.engine.ingest(event, seq, time) === 'duplicate') this.duplicates++;
      else {
        this.counter.input(seq, event, time);
        for (const output of this.decided) this.counter.resolved(seq, output.seq, output.user);
      }
      this.counter.endOfInput(seq);
      return undefined;
    } catch (error) {
      if (!(error instanceof XrefError)) throw error;
      return this.reject(error, seq);
    }
  }

  /** An input that never became a value (e.g. bad JSON): it still takes its place in the log. */
  reject(error: XrefError, seq = ++this.seq): XrefError {
    this.rejected.push({ index: seq - 1, error });
    this.engine.skip(seq);
    this.counter.endOfInput(seq);
    return error;
  }

  get summary(): OfflineSummary {
    const counted = this.counter.summary;
    return {
      events: counted.events,
      rejected: this.rejected.length,
      duplicates: this.duplicates,
      untimed: counted.untimed,
      unattributed: counted.unattributed,
      anonymous: counted.anonymous,
    };
  }
}

/**
 * Counts the active people of a whole log offline, with no server: what `xref activity` runs and
 * the oracle the streaming counts must equal.
 */
export function activityOfLog(events: Iterable<unknown>, config: ConfigInput = {}, options: OfflineActivityOptions = {}): { counter: ActivityCounter; summary: OfflineSummary; rejected: OfflineActivity['rejected'] } {
  const run = new OfflineActivity(config, options);
  for (const raw of events) run.add(raw);
  return { counter: run.counter, summary: run.summary, rejected: run.rejected };
}
