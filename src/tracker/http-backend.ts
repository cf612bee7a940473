/**
 * `httpBackend({ url, writeKey })`: the tracker's events into xref's HTTP collector, in batches
 * POSTed to `<url>/v1/events` (a JSON array of envelopes, Basic auth with the write key), from a
 * bounded queue in the background (src/tracker/delivery-queue.ts): `emit` never waits for it.
 *
 * A network error, a timeout, a 5xx, a 408 or a 429 is retried (after the server's Retry-After
 * when it sends one); the items a 2xx lists as rejected, and every item of another 4xx, fail for
 * good with the collector's error.
 */
import { type ErrorCode, ERROR_CATALOGUE, InvalidConfigError, XrefError, quote } from '../domain/errors.ts';
import { defaultLimits } from '../domain/limits.ts';
import { type BatchAttempt, type DeliveryOptions, DeliveryQueue, type ItemRejection, type Outcome, QueuedBackend, parseRetryAfter } from './delivery-queue.ts';

export interface HttpBackendOptions extends DeliveryOptions {
  /** The collector's base URL, e.g. `http://localhost:8080` (the backend POSTs to `<url>/v1/events`). */
  url: string;
  /** One of the collector's write keys (XREF_WRITE_KEYS), sent as `Authorization: Basic base64(writeKey + ':')`. */
  writeKey: string;
  /** The fetch to use (default: the global fetch, undici, which keeps its connections alive). */
  fetch?: typeof fetch;
  /** How long one request may take before it is aborted and retried, in ms; default 10,000. */
  requestTimeoutMs?: number;
  /** Largest request body in bytes; default 500 KiB, the collector's default request limit. */
  maxBatchBytes?: number;
}

export const HTTP_DEFAULTS = {
  flushAt: 1000,
  flushIntervalMs: 1000,
  maxInFlight: 8,
  requestTimeoutMs: 10_000,
  maxBatchBytes: defaultLimits().batchBytes,
} as const;

/** The collector refused an event, or a whole request, for good: its status and its own error. */
export class CollectorRefusedError extends XrefError {
  constructor(
    /** The HTTP status of the answer. */
    readonly status: number,
    /** The collector's error code (e.g. `XREF_INVALID_EVENT`), when it gave one. */
    readonly serverCode: string | undefined,
    /** The collector's message. */
    readonly serverMessage: string,
    /** The event's index in its batch, for a rejection of one item. */
    readonly index?: number,
    field?: string,
  ) {
    super(
      knownCode(serverCode) ?? (status === 401 || status === 403 ? 'XREF_UNAUTHORIZED' : 'XREF_INVALID_REQUEST'),
      index === undefined ? `the collector refused the request (${status}): ${serverMessage}` : `the collector rejected the event (${status}): ${serverMessage}`,
      field === undefined ? {} : { field },
    );
  }
}

function knownCode(code: string | undefined): ErrorCode | undefined {
  return code !== undefined && Object.hasOwn(ERROR_CATALOGUE, code) ? (code as ErrorCode) : undefined;
}

interface CollectorBody {
  error?: unknown;
  code?: unknown;
  field?: unknown;
  rejected?: unknown;
}

function parseBody(text: string): CollectorBody | undefined {
  if (text === '') return undefined;
  try {
    const body = JSON.parse(text) as unknown;
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as CollectorBody) : undefined;
  } catch {
    return undefined;
  }
}

/** The items a collector's answer lists under `rejected: [{ index, code, error, field? }]`. */
function itemRejections(status: number, body: CollectorBody | undefined): ItemRejection[] {
  if (body === undefined || !Array.isArray(body.rejected)) return [];
  const out: ItemRejection[] = [];
  for (const r of body.rejected as unknown[]) {
    if (typeof r !== 'object' || r === null) continue;
    const { index, code, error, field } = r as Record<string, unknown>;
    if (typeof index !== 'number') continue;
    out.push({
      index,
      error: new CollectorRefusedError(status, typeof code === 'string' ? code : undefined, typeof error === 'string' ? error : 'no reason given', index, typeof field === 'string' ? field : undefined),
    });
  }
  return out;
}

function describe(status: number, body: CollectorBody | undefined, text: string): string {
  if (typeof body?.error === 'string') return body.error;
  return text === '' ? `HTTP ${status} with an empty body` : `HTTP ${status}: ${quote(text, 200)}`;
}

/** The transport: one POST per attempt, its answer read as the collector gives it. */
export function collectorTransport(options: { url: string; writeKey: string; fetch?: typeof fetch; requestTimeoutMs?: number }): (batch: BatchAttempt) => Promise<Outcome> {
  const endpoint = `${options.url.replace(/\/+$/, '')}/v1/events`;
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs;
  const headers = { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${options.writeKey}:`).toString('base64')}` };
  return async (batch) => {
    const body = batch.jsons.length === 1 ? `[${batch.jsons[0]}]` : `[${batch.jsons.join(',')}]`;
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const response = await doFetch(endpoint, { method: 'POST', headers, body, signal: withTimeout(batch.signal, timeoutMs) });
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      text = await response.text();
    } catch (error) {
      const why = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describeNetworkError(error);
      return { kind: 'retry', error: new XrefError('XREF_NOT_READY', `POST ${endpoint} failed: ${why}`, { cause: error }) };
    }
    const parsed = parseBody(text);
    if (status >= 200 && status < 300) return { kind: 'delivered', rejected: itemRejections(status, parsed) };
    if (status === 408 || status === 429 || status >= 500) {
      const afterMs = parseRetryAfter(retryAfter);
      const error = new XrefError(status === 429 ? 'XREF_OVERLOADED' : 'XREF_NOT_READY', `POST ${endpoint} answered ${status}: ${describe(status, parsed, text)}`);
      return afterMs === undefined ? { kind: 'retry', error } : { kind: 'retry', error, afterMs };
    }
    const code = typeof parsed?.code === 'string' ? parsed.code : undefined;
    const field = typeof parsed?.field === 'string' ? parsed.field : undefined;
    return { kind: 'refused', error: new CollectorRefusedError(status, code, describe(status, parsed, text), undefined, field), rejected: itemRejections(status, parsed) };
  };
}

/** `signal`, or `timeoutMs` passing (a TimeoutError), whichever comes first (AbortSignal.any is Node 20.3+). */
function withTimeout(signal: AbortSignal, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([signal, timeout]);
  const controller = new AbortController();
  const abort = (from: AbortSignal) => () => controller.abort(from.reason);
  signal.addEventListener('abort', abort(signal), { once: true });
  timeout.addEventListener('abort', abort(timeout), { once: true });
  return controller.signal;
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return `${cause.code}${typeof cause.message === 'string' ? ` (${cause.message})` : ''}`;
  return (error as Error).message;
}

/** A backend that POSTs batches to the collector; see `HttpBackendOptions` and docs/tracker.md. */
export class HttpBackend extends QueuedBackend {
  protected readonly queue: DeliveryQueue;

  constructor(options: HttpBackendOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new InvalidConfigError('httpBackend', options, 'must be an options object { url, writeKey }');
    const { url, writeKey } = options;
    if (typeof url !== 'string' || !/^https?:\/\/[^/]/i.test(url) || !URL.canParse(url)) {
      throw new InvalidConfigError('httpBackend.url', url, "must be the collector's base URL, e.g. http://localhost:8080");
    }
    if (typeof writeKey !== 'string' || writeKey === '') throw new XrefError('XREF_INVALID_CONFIG', 'config httpBackend.writeKey must be one of the collector\'s write keys (a non-empty string)', { field: 'httpBackend.writeKey' });
    if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new InvalidConfigError('httpBackend.fetch', options.fetch, 'must be a fetch function');
    const requestTimeoutMs = options.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs;
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) throw new InvalidConfigError('httpBackend.requestTimeoutMs', requestTimeoutMs, 'must be an integer >= 1');
    this.queue = new DeliveryQueue({
      ...options,
      kind: 'httpBackend',
      transport: collectorTransport({ url, writeKey, requestTimeoutMs, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) }),
      defaults: { flushAt: HTTP_DEFAULTS.flushAt, flushIntervalMs: HTTP_DEFAULTS.flushIntervalMs, maxInFlight: HTTP_DEFAULTS.maxInFlight, maxBatchBytes: options.maxBatchBytes ?? HTTP_DEFAULTS.maxBatchBytes },
    });
  }

}

/** `httpBackend({ url, writeKey, ...queue options })`: see `HttpBackendOptions`. */
export function httpBackend(options: HttpBackendOptions): HttpBackend {
  return new HttpBackend(options);
}
