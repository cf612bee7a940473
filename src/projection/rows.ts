/**
 * What each stream's message becomes in the read model: pure, so the projection, the tests and
 * the query benchmark build rows the same way. A message that is not what its stream holds (a
 * bug, or a hand-made message) gives no row and is counted by the caller as skipped.
 */
import type { FeatureRules } from '../activity/event-features.ts';
import { eventTime } from '../domain/envelope.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import { resolvedId, retractionId, unmatchedId } from '../engine/records.ts';
import { HEADERS, decodeToken, subjects } from '../nats/subjects.ts';
import type { DecodedInput, EncodedInput } from '../service/input.ts';
import { type AuditRow, type ErrorRow, type EventRow, type ForgetRecord, type ProjectedStream, type ResolutionRow, type RetractionRow, type UnlinkRecord, type UnmatchedRow, eventRow } from './read-model.ts';

const decoder = new TextDecoder();

/** The rows one message gives, by table (at most one of them). */
export type MessageRows =
  | { readonly table: 'events'; readonly row: EventRow }
  /** `stored`: every input up to it had all its outputs stored before this message was (its `Xref-Resolution` header, when xref wrote it). */
  | { readonly table: 'resolutions'; readonly row: ResolutionRow; readonly stored?: number }
  | { readonly table: 'retractions'; readonly row: RetractionRow }
  | { readonly table: 'unmatched'; readonly row: UnmatchedRow }
  /** `control`: what an audit record of a control input asks of the read model besides its row (a forget, an event suppressed, an unlink). */
  | { readonly table: 'audit'; readonly row: AuditRow; readonly control?: ControlAction }
  | { readonly table: 'errors'; readonly row: ErrorRow }
  | { readonly table: 'none'; readonly why: string };

/**
 * What a control input's audit record asks of the read model, applied with its row
 * (docs/read-model.md, forgetting a user, unlinking an identifier): a forget erases the user; a
 * suppressed event, which the projection may have read from XREF_IN before the engine erased it,
 * is deleted; an unlink ends the identifier's link.
 */
export type ControlAction =
  | { readonly forget: ForgetRecord }
  | { readonly suppressed: { readonly streamSeq: number; readonly seq: number; readonly eventId: string } }
  | { readonly unlink: UnlinkRecord };

/** A message of any of the projected streams, as the projection reads it. */
export interface StreamMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  publishedMs(): number;
  header?(name: string): string | undefined;
}

/**
 * The source of `xref.in.<source>` (decoded), or the rest of the subject when it has more tokens.
 */
export function sourceOf(subject: string): string {
  const rest = subject.startsWith(subjects.inPrefix) ? subject.slice(subjects.inPrefix.length) : subject;
  return rest.includes('.') ? rest : decodeToken(rest);
}

function parse(msg: StreamMessage | string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(typeof msg === 'string' ? msg : decoder.decode(msg.data));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isRef = (value: unknown): value is UserRef => isRecord(value) && typeof value.kind === 'string' && typeof value.id === 'string';
const isIdentifier = (value: unknown): value is Identifier => isRecord(value) && typeof value.kind === 'string' && typeof value.value === 'string';
const isEvent = (value: unknown): value is XrefEvent => isRecord(value) && typeof value.id === 'string' && isRecord(value.ids);
const isCounts = (value: unknown): value is Record<string, number> => isRecord(value) && Object.values(value).every((n) => typeof n === 'number');

/**
 * The row of a control input's audit record (`ControlAudit`, src/engine/outputs.ts: a forget, an
 * unsuppress, an event suppressed, an unlink), and what it asks besides. It names no id: its identifier
 * columns hold the kind it names, if any (suppressed, unsuppress), and an empty value; its event
 * columns the input and, for a suppressed event, its id.
 */
function controlRows(body: Record<string, unknown>, msg: StreamMessage): MessageRows | undefined {
  const { outputId, reason, request, seq, eventId, kind, through } = body;
  if (typeof request !== 'string' || isIdentifier(body.identifier)) return undefined;
  if (typeof outputId !== 'string' || typeof reason !== 'string' || typeof seq !== 'number') return { table: 'none', why: 'not a control audit record' };
  const row: AuditRow = {
    outputId,
    streamSeq: msg.seq,
    reason,
    identifier: { kind: typeof kind === 'string' ? kind : '', value: '' },
    eventSeq: seq,
    eventId: typeof eventId === 'string' ? eventId : '',
    timeMs: msg.publishedMs(),
    record: body,
  };
  if (reason === 'forget') return { table: 'audit', row, control: { forget: { request, streamSeq: msg.seq, seq, ...(isCounts(through) ? { through } : {}) } } };
  if (reason === 'suppressed' && typeof eventId === 'string') return { table: 'audit', row, control: { suppressed: { streamSeq: msg.seq, seq, eventId } } };
  if (reason === 'unlink' && typeof kind === 'string') return { table: 'audit', row, control: { unlink: { request, streamSeq: msg.seq, seq, kind, found: body.found !== false } } };
  return { table: 'audit', row };
}

/** A Nats-Msg-Id as the publisher escaped it (`%` and four hex digits: src/nats/publisher.ts msgIdHeaderValue), as the id it stands for. */
export function msgIdOf(header: string): string {
  return header.includes('%') ? header.replace(/%([0-9a-f]{4})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))) : header;
}

/** A retraction (`{ retract, output, reason, seq, user }`, its header or its message), as its row. */
function retractionRows(body: Record<string, unknown>, msg: StreamMessage): MessageRows {
  const { retract, output, seq, user } = body;
  if (typeof retract !== 'string' || typeof output !== 'string' || typeof seq !== 'number' || !isRef(user)) return { table: 'none', why: 'not a retraction' };
  return { table: 'retractions', row: { outputId: retractionId(output, seq), streamSeq: msg.seq, retracted: output, eventId: retract, user, seq } };
}

/**
 * A resolution's output id: as xref publishes it (with the `Xref-Resolution` header), its
 * Nats-Msg-Id; a message without the header (published before xref wrote it, or by another
 * writer: read whole) has the one its event and user make, as xref's had then.
 */
function resolutionOutputId(msg: StreamMessage, head: Record<string, unknown>, user: UserRef, headed: boolean): string | undefined {
  if (headed) {
    const id = msg.header?.(HEADERS.msgId);
    return id === undefined ? undefined : msgIdOf(id);
  }
  return isEvent(head.event) ? resolvedId(head.event.id, user) : undefined;
}

/**
 * The rows of one message of `stream` (a resolved event's from its `Xref-Resolution` header when
 * it has one, as a headers-only delivery gives it, a retraction's from its `Xref-Retraction`). `decode` reads an XREF_IN message as the engine does
 * (service/input.ts decodeInput with the same config): an input the engine rejects is no event
 * here either (its error record comes through XREF_ERRORS). `features`: what the active-people
 * counts read of an event, stored with it when the projection counts.
 */
export function messageRows(stream: ProjectedStream, msg: StreamMessage, decode: (msg: EncodedInput) => DecodedInput, features?: FeatureRules): MessageRows {
  if (stream === 'in') {
    const decoded = decode(msg);
    if ('rejected' in decoded) return { table: 'none', why: 'rejected' };
    // a command (xref.ctl.<verb>), read only to fill a gap of the delivery: the engine applies it
    if ('control' in decoded) return { table: 'none', why: 'a control input' };
    return { table: 'events', row: eventRow(msg.seq, decoded.event, sourceOf(msg.subject), decoded.time ?? msg.publishedMs(), decoded.json, features) };
  }
  if (stream === 'groups') {
    const retraction = msg.header?.(HEADERS.retraction);
    if (retraction !== undefined) {
      const body = parse(retraction);
      return body === undefined ? { table: 'none', why: 'not a JSON object' } : retractionRows(body, msg);
    }
    const header = msg.header?.(HEADERS.resolution);
    const head = parse(header ?? msg);
    if (head === undefined) return { table: 'none', why: 'not a JSON object' };
    // a retraction read whole (no headers)
    if ('retract' in head) return retractionRows(head, msg);
    const { seq, user, via, at, stored } = head;
    if (typeof seq !== 'number' || !isRef(user) || !isIdentifier(via)) return { table: 'none', why: 'not a resolved event' };
    const outputId = resolutionOutputId(msg, head, user, header !== undefined);
    const row: ResolutionRow = { eventSeq: seq, user, via, decidedSeq: typeof at === 'number' && at >= seq ? at : seq };
    return { table: 'resolutions', row: outputId === undefined ? row : { ...row, outputId }, ...(typeof stored === 'number' ? { stored } : {}) };
  }
  const body = parse(msg);
  if (body === undefined) return { table: 'none', why: 'not a JSON object' };
  switch (stream) {
    case 'unmatched': {
      const { seq, reason, identifier, event } = body;
      if (typeof seq !== 'number' || typeof reason !== 'string' || !isIdentifier(identifier) || !isEvent(event)) return { table: 'none', why: 'not an unmatched record' };
      const timeMs = eventTime(event) ?? msg.publishedMs();
      return { table: 'unmatched', row: { outputId: unmatchedId(event.id), streamSeq: msg.seq, eventSeq: seq, reason, identifier, timeMs, record: body } };
    }
    case 'audit': {
      const control = controlRows(body, msg);
      if (control !== undefined) return control;
      const { outputId, seq, reason, identifier, user, eventId } = body;
      if (typeof outputId !== 'string' || typeof seq !== 'number' || typeof reason !== 'string' || !isIdentifier(identifier) || typeof eventId !== 'string') {
        return { table: 'none', why: 'not an audit record' };
      }
      return {
        table: 'audit',
        row: { outputId, streamSeq: msg.seq, reason, identifier, ...(isRef(user) ? { user } : {}), eventSeq: seq, eventId, timeMs: msg.publishedMs(), record: body },
      };
    }
    case 'errors': {
      const { id, reason, origin, at } = body;
      if (typeof id !== 'string' || typeof reason !== 'string' || typeof origin !== 'string') return { table: 'none', why: 'not an error record' };
      const atMs = typeof at === 'string' ? Date.parse(at) : Number.NaN;
      const timeMs = Number.isNaN(atMs) ? msg.publishedMs() : atMs;
      return { table: 'errors', row: { id, streamSeq: msg.seq, reason, origin, timeMs, record: body } };
    }
  }
}
