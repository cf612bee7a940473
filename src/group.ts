import { type ConfigInput, resolveConfig } from './domain/config.ts';
import type { ControlCommand } from './domain/control.ts';
import type { IdHasher } from './domain/id-hash.ts';
import { type XrefEvent, validateEvent } from './domain/envelope.ts';
import { XrefError } from './domain/errors.ts';
import { type Limits, defaultLimits } from './domain/limits.ts';
import { type PayloadRules, payloadRules } from './domain/payload-rules.ts';
import { IdentityEngine } from './engine/engine.ts';
import { erasureMatch } from './engine/erasure-match.ts';
import type { AuditRecord, ControlAudit, Erasure, Resolved, Retraction, Sink, Unmatched, UserRef } from './engine/outputs.ts';

/** internal kind → internal id → identifier kind → identifier value → events, in log order. */
export type GroupsDocument = Record<string, Record<string, Record<string, Record<string, XrefEvent[]>>>>;

export interface GroupReport {
  groups: GroupsDocument;
  unmatched: Unmatched[];
  audit: AuditRecord[];
  /** What control inputs did (`Grouper.control`): forget, unsuppress, unlink and suppressed records. */
  control: ControlAudit[];
  /** Inputs that were not events, or refused by the payload rules, by their index in the input. */
  rejected: { index: number; error: XrefError }[];
}

export interface GroupOptions {
  limits?: Limits;
  /** The installation's id hash: needed only to apply control inputs (`Grouper.control`). */
  hasher?: IdHasher;
}

/** Collects resolved events into the pygrouper document. */
export class GroupsCollector implements Sink {
  unmatchedEvents: Unmatched[] = [];
  auditRecords: AuditRecord[] = [];
  readonly controlRecords: ControlAudit[] = [];
  private readonly doc: Record<string, Record<string, Record<string, Record<string, Resolved[]>>>> = {};

  resolved(output: Resolved): void {
    const byId = (this.doc[output.user.kind] ??= {});
    const byKind = (byId[output.user.id] ??= {});
    const byValue = (byKind[output.via.kind] ??= {});
    (byValue[output.via.value] ??= []).push(output);
  }
  unmatched(output: Unmatched): void {
    this.unmatchedEvents.push(output);
  }
  audit(record: AuditRecord): void {
    this.auditRecords.push(record);
  }
  control(record: ControlAudit): void {
    this.controlRecords.push(record);
  }
  /** An unlink took a resolution back: it leaves the user's lists. */
  retract(retraction: Retraction): void {
    for (const values of Object.values(this.doc[retraction.user.kind]?.[retraction.user.id] ?? {})) {
      for (const [value, list] of Object.entries(values)) {
        const kept = list.filter((r) => r.outputId !== retraction.retracted);
        if (kept.length === 0) delete values[value];
        else values[value] = kept;
      }
    }
  }
  /** A user's resolutions standing now: what an unlink retracts from. */
  standing(user: UserRef): Resolved[] {
    return Object.values(this.doc[user.kind]?.[user.id] ?? {}).flatMap((values) => Object.values(values).flat());
  }
  /** A forgotten user: its events, the unmatched events of its ids and the audit records naming them go. */
  erase(erasure: Erasure): void {
    const match = erasureMatch(erasure, undefined);
    if (erasure.user !== undefined) delete this.doc[erasure.user.kind]?.[erasure.user.id];
    this.unmatchedEvents = this.unmatchedEvents.filter((u) => !match.event(u.event));
    this.auditRecords = this.auditRecords.filter((a) => !match.audit(a));
  }

  /** The document, every list in log order (flushed buffers arrive after newer events). */
  groups(): GroupsDocument {
    const out: GroupsDocument = {};
    for (const [userKind, users] of Object.entries(this.doc)) {
      const outUsers: GroupsDocument[string] = (out[userKind] = {});
      for (const [userId, kinds] of Object.entries(users)) {
        const outKinds: GroupsDocument[string][string] = (outUsers[userId] = {});
        for (const [kind, values] of Object.entries(kinds)) {
          const outValues: Record<string, XrefEvent[]> = (outKinds[kind] = {});
          for (const [value, list] of Object.entries(values)) outValues[value] = inLogOrder(list).map((r) => r.event);
        }
      }
    }
    return out;
  }
}

function inLogOrder<T extends { seq: number }>(list: T[]): T[] {
  for (let i = 1; i < list.length; i++) if (list[i - 1]!.seq > list[i]!.seq) return [...list].sort((a, b) => a.seq - b.seq);
  return list;
}

/**
 * Groups a log one event at a time, with no server: what `groupEvents` and `xref group` run.
 * A bad event is reported with its index and never stops the rest. The config's payload rules
 * apply as in the streaming engine (`schemas`, `unknownTypes`), so it stays the engine's oracle,
 * except `maxFutureMs`: an offline log has no arrival time to measure a timestamp against.
 */
export class Grouper {
  readonly rejected: GroupReport['rejected'] = [];
  private readonly collector = new GroupsCollector();
  private readonly engine: IdentityEngine;
  private readonly limits: Limits;
  private readonly rules: PayloadRules;
  private index = 0;

  constructor(config: ConfigInput = {}, options: GroupOptions = {}) {
    this.limits = options.limits ?? defaultLimits();
    const resolved = resolveConfig(config);
    this.rules = payloadRules(resolved);
    this.engine = new IdentityEngine({ config: resolved, sink: this.collector, ...(options.hasher === undefined ? {} : { hasher: options.hasher }) });
  }

  /**
   * Applies a control input at this place of the log (docs/erasure.md), as the streaming engine
   * does: an unlink retracts from what was grouped so far. Needs `hasher`.
   */
  control(command: ControlCommand): void {
    this.index++;
    const target = command.verb === 'unlink' ? this.engine.unlinkTarget(command.identifier) : undefined;
    const standing = target === undefined ? [] : this.collector.standing(target.user.ref);
    this.engine.control(command, this.engine.seq + 1, command.verb === 'unlink' ? { unlink: { target, standing } } : {});
  }

  /** Adds one raw event (`bytes`: its size, when known). Returns the error when it was rejected. */
  add(raw: unknown, bytes?: number): XrefError | undefined {
    const index = this.index++;
    try {
      const event = validateEvent(raw, this.limits, bytes);
      this.rules.check(event);
      this.engine.ingest(event);
      return undefined;
    } catch (error) {
      if (!(error instanceof XrefError)) throw error;
      this.rejected.push({ index, error });
      return error;
    }
  }

  /** Reports a line that never became a value (e.g. bad JSON) so indexes stay aligned. */
  reject(error: XrefError): void {
    this.rejected.push({ index: this.index++, error });
  }

  /** Ends the log: what is still buffered is released as `unlinked`. */
  finish(): GroupReport {
    this.engine.finish();
    return { groups: this.collector.groups(), unmatched: this.collector.unmatchedEvents, audit: this.collector.auditRecords, control: this.collector.controlRecords, rejected: this.rejected };
  }
}

/**
 * Groups a whole log offline, with no server: the embedded engine and the oracle the streaming
 * service must agree with. Events that are not valid envelopes, or that the config's schemas or
 * `unknownTypes` refuse, are reported in `rejected` by index; the rest is still grouped. (No
 * future-timestamp check: offline, there is no arrival time.) Anything still buffered at the end
 * is `unlinked`.
 */
export function groupEvents(events: Iterable<unknown>, config: ConfigInput = {}, options: GroupOptions = {}): GroupReport {
  const grouper = new Grouper(config, options);
  for (const raw of events) grouper.add(raw);
  return grouper.finish();
}
