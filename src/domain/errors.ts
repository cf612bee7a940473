/**
 * The error catalogue: every code xref reports, with the one HTTP status it answers with, what it
 * means, and the form of its message. `XrefError` carries a code; the README's error table is
 * printed from this list (`npm run errors:table`), and a test keeps the two equal.
 */
export const ERROR_CATALOGUE = {
  XREF_INVALID_EVENT: { status: 400, meaning: 'an event does not match the envelope', message: '<field> <what it must be>, got <value>' },
  XREF_INVALID_JSON: { status: 400, meaning: 'a body, a line or a message is not JSON', message: 'invalid JSON (<the parser\'s reason>)' },
  XREF_INVALID_ARGUMENT: { status: 400, meaning: 'a command argument or an API parameter is wrong', message: '<argument> must be <what>, got <value>' },
  XREF_INVALID_REQUEST: { status: 400, meaning: 'the HTTP request itself is malformed (headers, route arguments)', message: '<header or part> <what is wrong>' },
  XREF_SCHEMA_VIOLATION: { status: 400, meaning: "an event's data does not match the JSON Schema of its type (config `schemas`)", message: 'data<path> <what the schema wants>, got <value> (schema <name>)' },
  XREF_UNKNOWN_EVENT_TYPE: { status: 400, meaning: 'an event type has no schema and the config says `unknownTypes: "reject"`', message: 'name <name> has no schema (known: <types>)' },
  XREF_FUTURE_TIMESTAMP: { status: 400, meaning: "an event's timestamp is further ahead of its arrival than `maxFutureMs`", message: 'timestamp <value> is <ms> ms ahead of its arrival, over maxFutureMs <limit>' },
  XREF_UNAUTHORIZED: { status: 401, meaning: 'the credential is missing or not one xref accepts (write key, read token, admin token)', message: '<the Authorization header> <what was expected>' },
  XREF_NOT_FOUND: { status: 404, meaning: 'no such route, event, user or identifier', message: 'no route <method> <path>: the routes are <list> | <what> <id> is not known' },
  XREF_METHOD_NOT_ALLOWED: { status: 405, meaning: 'the route exists but not for this method (the Allow header lists those it takes)', message: '<method> is not allowed on <path>: use <allowed>' },
  XREF_NOT_CAUGHT_UP: { status: 409, meaning: 'the read model did not reach the input sequence asked for (`min_seq`) within `wait_ms`', message: 'the read model is at input <watermark>, not yet at min_seq <n>, after <ms> ms' },
  XREF_FENCED: { status: 409, meaning: 'this process no longer holds its lease (the engine lease, or the read model\'s claim): another one took over, and this one stops writing', message: '<what was not done>: the lease is held by another process' },
  XREF_LIMIT_EXCEEDED: { status: 413, meaning: 'an event, a batch or an identifier is larger than its limit', message: '<field> is <size> <unit>, over the limit of <limit> <unit>' },
  XREF_UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'the body comes in a media type or Content-Encoding xref does not read', message: '<header> <value> is not supported: <what to send>' },
  XREF_INVALID_CONFIG: { status: 500, meaning: 'the identity config or a setting is wrong: the command does not start', message: '<setting or config field> <what it must be>, got <value>' },
  XREF_TOPOLOGY: { status: 500, meaning: 'a stream or bucket could not be made as xref needs it', message: 'cannot apply <stream or bucket>: <the server\'s reason>' },
  XREF_INTERNAL: { status: 500, meaning: 'an unexpected failure inside xref (a bug): the message says what was being done', message: '<what failed>' },
  XREF_PUBLISH_REFUSED: { status: 502, meaning: 'JetStream refused a message (not an outage): the input it belongs to stays unacked', message: 'JetStream refused a message on <subject>: <reason> (code <code>)' },
  XREF_DATABASE: { status: 503, meaning: 'the read-model database is not reachable, or refused a statement', message: '<what was being done>: <the database\'s reason>' },
  XREF_NATS_UNAVAILABLE: { status: 503, meaning: 'NATS is not reachable, not answering, or not what xref needs (JetStream, version)', message: '<what was tried>: <why>' },
  XREF_NOT_READY: { status: 503, meaning: 'not ready to take traffic (starting, NATS down, shutting down)', message: 'not ready: <the failing checks>' },
  XREF_OVERLOADED: { status: 503, meaning: 'too much already awaits storage: retry after the Retry-After delay', message: '<count> events already await storage' },
  XREF_CLOSED: { status: 503, meaning: 'the connection or publisher closed before the work finished', message: '<what> closed before <what was waiting>' },
} as const satisfies Record<string, { status: number; meaning: string; message: string }>;

/** Stable error codes; one per kind of failure a caller may want to branch on. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The HTTP status an error code answers with (one per code). */
export function statusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

/** Whether `error` is an XrefError (with this code, when one is given). */
export function isXrefError<C extends ErrorCode>(error: unknown, code?: C): error is XrefError & { code: C } {
  return error instanceof XrefError && (code === undefined || error.code === code);
}

/** Quote a bad value for a message: short, JSON-shaped, never huge. */
export function quote(value: unknown, max = 80): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value);
  } catch {
    // a cycle, a BigInt, or nesting too deep to print (RangeError): say what it is instead
    text = Array.isArray(value) ? '[an array too deep to print]' : typeof value === 'object' && value !== null ? '{an object too deep to print}' : typeof value;
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export class XrefError extends Error {
  readonly code: ErrorCode;
  /** Dotted path of the offending field, e.g. `ids.cookie`. */
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.field = options.field;
  }
}

/** An event does not match the envelope (docs/architecture.md, the event envelope). */
export class InvalidEventError extends XrefError {
  constructor(field: string, value: unknown, expected: string) {
    super('XREF_INVALID_EVENT', `${field} ${expected}, got ${quote(value)}`, { field });
  }
}

/** An event, a batch or an identifier is larger than its configured limit. */
export class LimitExceededError extends XrefError {
  readonly limit: number;
  constructor(field: string, size: number, limit: number, unit: string) {
    super('XREF_LIMIT_EXCEEDED', `${field} is ${size} ${unit}, over the limit of ${limit} ${unit}`, { field });
    this.limit = limit;
  }
}

export class InvalidConfigError extends XrefError {
  constructor(field: string, value: unknown, expected: string) {
    super('XREF_INVALID_CONFIG', `config ${field} ${expected}, got ${quote(value)}`, { field });
  }
}
