import { type ErrorCode, XrefError } from '../domain/errors.ts';

/**
 * An XrefError with the HTTP status it answers with, headers to send (Retry-After,
 * WWW-Authenticate) and fields to add to the JSON body (a batch's rejections).
 */
export class HttpError extends XrefError {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readonly<Record<string, unknown>>;

  constructor(
    readonly statusCode: number,
    code: ErrorCode,
    message: string,
    options: { field?: string; cause?: unknown; headers?: Record<string, string>; body?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
    this.headers = options.headers ?? {};
    this.body = options.body ?? {};
  }
}

/** The JSON body of every 4xx/5xx answer. */
export interface ErrorBody {
  error: string;
  code: ErrorCode;
  field?: string;
  [extra: string]: unknown;
}

/** Status for an XrefError that carries none. */
export function statusOf(error: XrefError): number {
  if (error instanceof HttpError) return error.statusCode;
  switch (error.code) {
    case 'XREF_LIMIT_EXCEEDED':
      return 413;
    case 'XREF_UNAUTHORIZED':
      return 401;
    case 'XREF_NOT_FOUND':
      return 404;
    case 'XREF_NATS_UNAVAILABLE':
    case 'XREF_NOT_READY':
      return 503;
    case 'XREF_INTERNAL':
    case 'XREF_TOPOLOGY':
      return 500;
    default:
      return 400;
  }
}

export function errorBody(error: XrefError): ErrorBody {
  const body: ErrorBody = { error: error.message, code: error.code };
  if (error.field !== undefined) body.field = error.field;
  return error instanceof HttpError ? { ...body, ...error.body } : body;
}
