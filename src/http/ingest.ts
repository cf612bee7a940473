/**
 * What every ingest route does with the items of a request: turn each into an event (or a
 * rejection by index: the envelope, the limits, then the config's payload rules), store the good
 * ones through the sink, and answer only once every one is stored, or 503 when the sink does not
 * confirm them within the deadline.
 */
import { type XrefEvent, parseEvent } from '../domain/envelope.ts';
import { type ErrorCode, XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import type { PayloadRules } from '../domain/payload-rules.ts';
import { HttpError } from './errors.ts';
import type { RejectReason } from './metrics.ts';
import { type EventSink, SinkOverloadedError } from './sink.ts';

/** One refused item of a request. */
export interface Rejection {
  readonly index: number;
  readonly field?: string;
  readonly error: string;
  readonly code: ErrorCode;
}

export interface PreparedEvent {
  readonly index: number;
  readonly event: XrefEvent;
  /** The event as stored (JSON). */
  readonly json: string;
}

/** The 2xx body of every ingest route. */
export interface IngestResult {
  success: true;
  /** Events stored by this request. */
  accepted: number;
  /** Events whose id was already stored (stored once). */
  duplicates: number;
  rejected: Rejection[];
  /** The highest XREF_IN sequence among the events this request stored or found stored (read your writes: `min_seq`). */
  seq: number;
}

/** An item refused: the error, and the candidate event its field is a path in (for the error record). */
export interface RefusedItem {
  readonly index: number;
  readonly error: XrefError;
  readonly candidate: unknown;
}

function rejection(index: number, error: XrefError): Rejection {
  return error.field === undefined ? { index, error: error.message, code: error.code } : { index, field: error.field, error: error.message, code: error.code };
}

function asXrefError(index: number, error: unknown): XrefError {
  if (error instanceof XrefError) return error;
  // a RangeError from a value nested too deeply for JSON.stringify, or the like
  return new XrefError('XREF_INVALID_EVENT', `event ${index} could not be read (${(error as Error).message}); is it nested too deeply?`, { field: 'event' });
}

export interface PrepareOptions {
  readonly limits: Limits;
  /** The config's payload rules (schemas, unknownTypes, maxFutureMs); none: the envelope only. */
  readonly rules?: PayloadRules;
  /** When the request arrived (epoch ms): a timestamp is checked against it. */
  readonly arrivalMs?: number;
}

/**
 * Maps and validates every item: `toEvent` gives the candidate envelope (the item itself for the
 * native API, the Segment mapping otherwise); it is then checked against the size limit (the
 * message names the index), the envelope, and the payload rules (its type's schema, and its
 * timestamp against the request's arrival).
 */
export function prepareEvents(
  items: readonly unknown[],
  toEvent: (item: unknown) => unknown,
  options: PrepareOptions,
): { prepared: PreparedEvent[]; rejected: Rejection[]; refused: RefusedItem[] } {
  const { limits, rules, arrivalMs } = options;
  const prepared: PreparedEvent[] = [];
  const rejected: Rejection[] = [];
  const refused: RefusedItem[] = [];
  for (let index = 0; index < items.length; index++) {
    let candidate: unknown;
    try {
      candidate = toEvent(items[index]);
      let json = JSON.stringify(candidate) as string | undefined;
      if (json === undefined) throw new XrefError('XREF_INVALID_EVENT', `event ${index} is not a JSON value`, { field: 'event' });
      const bytes = Buffer.byteLength(json);
      if (bytes > limits.eventBytes) {
        throw new XrefError('XREF_LIMIT_EXCEEDED', `event ${index} is ${bytes} bytes, over the limit of ${limits.eventBytes} bytes`, { field: 'event' });
      }
      const { event, time } = parseEvent(candidate, limits, bytes);
      rules?.check(event, arrivalMs, time);
      if (event !== candidate) json = JSON.stringify(event);
      prepared.push({ index, event, json });
    } catch (thrown) {
      const error = asXrefError(index, thrown);
      rejected.push(rejection(index, error));
      refused.push({ index, error, candidate });
    }
  }
  return { prepared, rejected, refused };
}

export function rejectReason(r: Pick<Rejection, 'code' | 'field'>): RejectReason {
  switch (r.code) {
    case 'XREF_LIMIT_EXCEEDED':
      return r.field === 'event' ? 'event_too_large' : 'limit_exceeded';
    case 'XREF_SCHEMA_VIOLATION':
      return 'schema_violation';
    case 'XREF_UNKNOWN_EVENT_TYPE':
      return 'unknown_event_type';
    case 'XREF_FUTURE_TIMESTAMP':
      return 'future_timestamp';
    default:
      return 'invalid_event';
  }
}

/** Every item was refused: 413 when all for their size, else 400; the body lists them all. */
export function allRejected(rejected: readonly Rejection[]): HttpError {
  const first = rejected[0]!;
  const tooLarge = rejected.every((r) => r.code === 'XREF_LIMIT_EXCEEDED' && r.field === 'event');
  const message = rejected.length === 1 ? first.error : `all ${rejected.length} events were rejected; the first, event ${first.index}: ${first.error}`;
  // 413 only when every event was too large; else the code of the first that was not
  const code = tooLarge ? 'XREF_LIMIT_EXCEEDED' : (rejected.find((r) => r.code !== 'XREF_LIMIT_EXCEEDED') ?? first).code;
  return new HttpError(code, message, {
    ...(first.field === undefined ? {} : { field: first.field }),
    body: { success: false, accepted: 0, duplicates: 0, rejected },
  });
}

export function retryAfterSeconds(deadlineMs: number): number {
  return Math.max(1, Math.ceil(deadlineMs / 1000));
}

function unavailable(message: string, deadlineMs: number, cause?: unknown): HttpError {
  return new HttpError('XREF_NATS_UNAVAILABLE', message, { headers: { 'retry-after': String(retryAfterSeconds(deadlineMs)) }, cause });
}

/**
 * Publishes every prepared event and waits for all acks, up to `deadlineMs`. Resolves with the
 * number of duplicates and the highest XREF_IN sequence of them all; throws a 503 HttpError (with
 * Retry-After) when the sink fails or is late.
 * Publishes still running after the deadline go on (the sink retries them); a client's retry with
 * the same ids is stored once.
 */
export async function storeAll(sink: EventSink, prepared: readonly PreparedEvent[], deadlineMs: number): Promise<{ duplicates: number; seq: number }> {
  if (prepared.length === 0) return { duplicates: 0, seq: 0 };
  let timer: NodeJS.Timeout | undefined;
  const all = (async () => Promise.all(prepared.map((p) => sink.publish(p.event, p.json))))();
  all.catch(() => undefined); // settled late, after the deadline answered
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), deadlineMs);
  });
  try {
    const acks = await Promise.race([all, late]);
    if (acks === 'late') {
      throw unavailable(
        `JetStream did not confirm ${prepared.length === 1 ? 'the event' : `all ${prepared.length} events`} within ${deadlineMs} ms, so none is acknowledged: send the request again (the same ids are stored once)`,
        deadlineMs,
      );
    }
    let duplicates = 0;
    let seq = 0;
    for (const ack of acks) {
      if (ack.duplicate) duplicates++;
      if (ack.seq > seq) seq = ack.seq;
    }
    return { duplicates, seq };
  } catch (error) {
    if (error instanceof HttpError) throw error;
    const why = error instanceof SinkOverloadedError ? `the collector is overloaded (${error.message})` : `the events could not be stored (${(error as Error).message})`;
    throw unavailable(`${why}, so none is acknowledged: send the request again later (the same ids are stored once)`, deadlineMs, error);
  } finally {
    clearTimeout(timer);
  }
}
