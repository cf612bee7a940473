/**
 * What each stream's message becomes in the read model: pure, so the projection, the tests and
 * the query benchmark build rows the same way. A message that is not what its stream holds (a
 * bug, or a hand-made message) gives no row and is counted by the caller as skipped.
 */
import { eventTime } from '../domain/envelope.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import { unmatchedId } from '../engine/records.ts';
import { HEADERS, decodeToken, subjects } from '../nats/subjects.ts';
import type { DecodedInput, EncodedInput } from '../service/input.ts';
import type { AuditRow, ErrorRow, EventRow, ProjectedStream, ResolutionRow, UnmatchedRow } from './read-model.ts';

const decoder = new TextDecoder();

/** The rows one message gives, by table (at most one of them). */
export type MessageRows =
  | { readonly table: 'events'; readonly row: EventRow }
  | { readonly table: 'resolutions'; readonly row: ResolutionRow }
  | { readonly table: 'unmatched'; readonly row: UnmatchedRow }
  | { readonly table: 'audit'; readonly row: AuditRow }
  | { readonly table: 'errors'; readonly row: ErrorRow }
  | { readonly table: 'none'; readonly why: string };

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

/** Where the event of a resolved-event message begins: it is written last (service/outputs.ts). */
const EVENT_FIELD = Buffer.from(',"event":{');

/**
 * A resolved-event message (`{ seq, user, via, event }`, event last) without its event: what
 * the read model keeps of it is the seq, the user and via, so the envelope, the bulk of the
 * message, is neither decoded nor parsed. A `"` in a JSON string is escaped, so the first
 * `,"event":{` is the field's; a message of another shape is parsed whole.
 */
function resolutionHead(msg: StreamMessage): Record<string, unknown> | undefined {
  const bytes = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
  const at = bytes.indexOf(EVENT_FIELD);
  if (at < 0) return parse(msg);
  try {
    const value: unknown = JSON.parse(`${bytes.toString('utf8', 0, at)}}`);
    return isRecord(value) ? value : undefined;
  } catch {
    return parse(msg);
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isRef = (value: unknown): value is UserRef => isRecord(value) && typeof value.kind === 'string' && typeof value.id === 'string';
const isIdentifier = (value: unknown): value is Identifier => isRecord(value) && typeof value.kind === 'string' && typeof value.value === 'string';
const isEvent = (value: unknown): value is XrefEvent => isRecord(value) && typeof value.id === 'string' && isRecord(value.ids);

/**
 * The rows of one message of `stream` (a resolved event's from its `Xref-Resolution` header when
 * it has one, as a headers-only delivery gives it). `decode` reads an XREF_IN message as the engine does
 * (service/input.ts decodeInput with the same config): an input the engine rejects is no event
 * here either (its error record comes through XREF_ERRORS).
 */
export function messageRows(stream: ProjectedStream, msg: StreamMessage, decode: (msg: EncodedInput) => DecodedInput): MessageRows {
  if (stream === 'in') {
    const decoded = decode(msg);
    if ('rejected' in decoded) return { table: 'none', why: 'rejected' };
    const row: EventRow = { seq: msg.seq, event: decoded.event, source: sourceOf(msg.subject), timeMs: decoded.time ?? msg.publishedMs() };
    return { table: 'events', row: decoded.json === undefined ? row : { ...row, json: decoded.json } };
  }
  if (stream === 'groups') {
    const header = msg.header?.(HEADERS.resolution);
    const head = header === undefined ? resolutionHead(msg) : parse(header);
    if (head === undefined) return { table: 'none', why: 'not a JSON object' };
    const { seq, user, via, at } = head;
    if (typeof seq !== 'number' || !isRef(user) || !isIdentifier(via)) return { table: 'none', why: 'not a resolved event' };
    return { table: 'resolutions', row: { eventSeq: seq, user, via, decidedSeq: typeof at === 'number' && at >= seq ? at : seq } };
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
