import type { ErrorRecord } from '../domain/error-record.ts';
import type { AuditRecord, ControlAudit, Erasure, Resolved, Retraction, Sink, Unmatched } from '../engine/outputs.ts';
import type { OutputHeader } from '../runtime/durable-consumer.ts';
import { HEADERS, subjects } from '../nats/subjects.ts';

/** One message to publish: where, what, and its deterministic id (the JetStream dedup key). */
export interface OutboundMessage {
  readonly subject: string;
  readonly msgId: string;
  readonly payload: string;
  readonly header?: OutputHeader;
}

/**
 * A resolved event on its user's subject: `{ seq, user, via, event }`, event last; the same
 * without the event, with `at`, the input whose applying resolved it (the event's own, or a later
 * link that flushed it from a buffer), in the `Xref-Resolution` header (JSON has no raw CR or LF,
 * and begins with `{`). With `stored` when the publisher knows it: every input up to it had all
 * its outputs stored before this message was published (docs/activity.md: how far the counts may
 * go while the projection catches up). Unlike the rest, it depends on timing, not on the log.
 */
export function resolvedMessage(r: Resolved, at: number, stored?: number): OutboundMessage {
  const head = JSON.stringify({ seq: r.seq, user: r.user, via: r.via });
  const tail = stored === undefined ? `"at":${at}}` : `"at":${at},"stored":${stored}}`;
  return {
    subject: subjects.group(r.user.kind, r.user.id),
    msgId: r.outputId,
    payload: `${head.slice(0, -1)},"event":${JSON.stringify(r.event)}}`,
    header: { name: HEADERS.resolution, value: `${head.slice(0, -1)},${tail}` },
  };
}

/**
 * A resolution taken back, on the user's subject after it: `{ retract, output, reason, seq, user }`
 * (the event's id, the output retracted, the unlink input), also in the `Xref-Retraction` header.
 */
export function retractionMessage(r: Retraction): OutboundMessage {
  const payload = JSON.stringify({ retract: r.eventId, output: r.retracted, reason: r.reason, seq: r.seq, user: r.user });
  return { subject: subjects.group(r.user.kind, r.user.id), msgId: r.outputId, payload, header: { name: HEADERS.retraction, value: payload } };
}

/** An unplaced event on `xref.unmatched.<kind>`: `{ seq, reason, identifier, event }`. */
export function unmatchedMessage(u: Unmatched): OutboundMessage {
  return {
    subject: subjects.unmatched(u.identifier.kind),
    msgId: u.outputId,
    payload: JSON.stringify({ seq: u.seq, reason: u.reason, identifier: u.identifier, event: u.event }),
  };
}

/** A decision on `xref.audit.<reason>`: the audit record as it is. */
export function auditMessage(a: AuditRecord): OutboundMessage {
  return { subject: subjects.audit(a.reason), msgId: a.outputId, payload: JSON.stringify(a) };
}

/** A control input's audit record on `xref.audit.<reason>` (forget, unsuppress, suppressed): as it is. */
export function controlMessage(c: ControlAudit): OutboundMessage {
  return { subject: subjects.audit(c.reason), msgId: c.outputId, payload: JSON.stringify(c) };
}

/**
 * An error record on `xref.errors.<reason>`, its id the message id: a rejected input, so nothing
 * vanishes silently (the engine's records have deterministic ids: a replay's are dropped as
 * duplicates within the stream's window, and are the same rows in the read model after it).
 */
export function errorMessage(record: ErrorRecord): OutboundMessage {
  return { subject: subjects.errors(record.reason), msgId: record.id, payload: JSON.stringify(record) };
}

/**
 * A sink that turns every decision of the engine into its message and hands it to `send`;
 * `applying` is the input the engine applies (it decides only while applying one); `erase` is
 * told of a forget (what was already published of the user is the caller's to erase); `stored`,
 * the input through which every output is stored now (DurableConsumer.storedBelow), if known.
 */
export function messageSink(send: (message: OutboundMessage) => void, applying: () => number, erase: (erasure: Erasure) => void = () => {}, stored?: () => number | undefined): Sink {
  return {
    resolved: (r) => send(resolvedMessage(r, applying(), stored?.())),
    unmatched: (u) => send(unmatchedMessage(u)),
    audit: (a) => send(auditMessage(a)),
    control: (c) => send(controlMessage(c)),
    retract: (r) => send(retractionMessage(r)),
    erase,
  };
}
