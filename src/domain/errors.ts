/** Stable error codes; one per kind of failure a caller may want to branch on. */
export type ErrorCode =
  | 'XREF_INVALID_EVENT'
  | 'XREF_INVALID_CONFIG'
  | 'XREF_LIMIT_EXCEEDED'
  | 'XREF_INVALID_JSON'
  | 'XREF_INVALID_ARGUMENT'
  | 'XREF_NATS_UNAVAILABLE'
  | 'XREF_TOPOLOGY'
  /** HTTP: the write key is missing or not one of XREF_WRITE_KEYS. */
  | 'XREF_UNAUTHORIZED'
  /** HTTP: the request itself is malformed (media type, headers, route arguments). */
  | 'XREF_INVALID_REQUEST'
  /** HTTP: no such route. */
  | 'XREF_NOT_FOUND'
  /** HTTP: not ready to take traffic (starting, NATS down, shutting down). */
  | 'XREF_NOT_READY'
  /** An unexpected failure inside xref (a bug): the message says what was being done. */
  | 'XREF_INTERNAL';

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
