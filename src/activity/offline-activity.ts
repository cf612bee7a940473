import { type ConfigInput, resolveConfig } from '../domain/config.ts';
import type { ControlCommand } from '../domain/control.ts';
import { eventTime, validateEvent } from '../domain/envelope.ts';
import { XrefError } from '../domain/errors.ts';
import type { IdHasher } from '../domain/id-hash.ts';
import { defaultLimits, type Limits } from '../domain/limits.ts';
import { payloadRules, type PayloadRules } from '../domain/payload-rules.ts';
import { IdentityEngine } from '../engine/engine.ts';
import type { Resolved, Retraction, Sink, UserRef } from '../engine/outputs.ts';
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
  /** The installation's id hash: needed only to apply control inputs (`control`); the resolutions standing are then kept, for an unlink to retract from. */
  hasher?: IdHasher;
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
  /** The resolutions the engine decided during the current input (its Sink calls are synchronous), and those it took back. */
  private readonly decided: Resolved[] = [];
  private readonly taken: Resolved[] = [];
  /** With a hasher: each user's resolutions standing (by user key, then output id), what an unlink retracts from. */
  private readonly standing: Map<string, Map<string, Resolved>> | undefined;
  private duplicates = 0;
  private seq = 0;

  constructor(config: ConfigInput = {}, options: OfflineActivityOptions = {}) {
    const resolved = resolveConfig(config);
    this.limits = options.limits ?? defaultLimits();
    this.rules = payloadRules(resolved);
    this.counter = new ActivityCounter(resolved, options);
    this.standing = options.hasher === undefined ? undefined : new Map();
    const sink: Sink = { resolved: (output) => this.placed(output), unmatched: () => {}, audit: () => {}, retract: (retraction) => this.retract(retraction) };
    this.engine = new IdentityEngine({ config: resolved, sink, ...(options.hasher === undefined ? {} : { hasher: options.hasher }) });
  }

  /** Applies one raw input. Returns the error when it was rejected. */
  add(raw: unknown, bytes?: number): XrefError | undefined {
    const seq = ++this.seq;
    try {
      const event = validateEvent(raw, this.limits, bytes);
      this.rules.check(event);
      this.decided.length = 0;
      const time = eventTime(event);
      const outcome = this.engine.ingest(event, seq, time);
      if (outcome === 'duplicate') this.duplicates++;
      // a suppressed event (its id forgotten) is dropped, and counts for no one
      else if (outcome === 'accepted') {
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

  /**
   * Applies a control input at its place in the log (the next seq, as `add`), as the streaming
   * engine does (docs/erasure.md); needs `hasher`. An unlink's retractions are counted, then the
   * resolutions it decided, as the streaming counts take them. A forget changes no count (the
   * counts stay as counted: docs/read-model.md); the events it suppresses later count for no one.
   */
  control(command: ControlCommand): void {
    const seq = ++this.seq;
    this.decided.length = 0;
    this.taken.length = 0;
    const target = command.verb === 'unlink' ? this.engine.unlinkTarget(command.identifier) : undefined;
    const standing = target === undefined ? [] : [...(this.standing?.get(userKey(target.user.ref))?.values() ?? [])];
    this.engine.control(command, seq, command.verb === 'unlink' ? { unlink: { target, standing } } : {});
    for (const r of this.taken) this.counter.retracted(seq, r.seq, r.user, r.event, eventTime(r.event));
    for (const output of this.decided) this.counter.resolved(seq, output.seq, output.user);
    this.counter.endOfInput(seq);
  }

  /** An input that never became a value (e.g. bad JSON): it still takes its place in the log. */
  reject(error: XrefError, seq = ++this.seq): XrefError {
    this.rejected.push({ index: seq - 1, error });
    this.engine.skip(seq);
    this.counter.endOfInput(seq);
    return error;
  }

  private placed(output: Resolved): void {
    this.decided.push(output);
    if (this.standing === undefined) return;
    const key = userKey(output.user);
    let resolutions = this.standing.get(key);
    if (resolutions === undefined) this.standing.set(key, (resolutions = new Map()));
    resolutions.set(output.outputId, output);
  }

  private retract(retraction: Retraction): void {
    const resolutions = this.standing?.get(userKey(retraction.user));
    const taken = resolutions?.get(retraction.retracted);
    if (taken === undefined) return;
    resolutions!.delete(retraction.retracted);
    this.taken.push(taken);
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

const userKey = (user: UserRef) => `${user.kind}:${user.id}`;

/**
 * Counts the active people of a whole log offline, with no server: what `xref activity` runs and
 * the oracle the streaming counts must equal.
 */
export function activityOfLog(events: Iterable<unknown>, config: ConfigInput = {}, options: OfflineActivityOptions = {}): { counter: ActivityCounter; summary: OfflineSummary; rejected: OfflineActivity['rejected'] } {
  const run = new OfflineActivity(config, options);
  for (const raw of events) run.add(raw);
  return { counter: run.counter, summary: run.summary, rejected: run.rejected };
}
