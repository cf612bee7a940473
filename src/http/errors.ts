import { type ErrorCode, XrefError, statusOf } from '../domain/errors.ts';

/**
 * An XrefError answered over HTTP, with headers to send (Retry-After, WWW-Authenticate) and
 * fields to add to the JSON body (a batch's rejections). Its status is its code's, from the
 * error catalogue.
 */
export class HttpError extends XrefError {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown; headers?: Record<string, string>; body?: Record<string, unknown> } = {}) {
    super(code, message, options);
    this.headers = options.headers ?? {};
    this.body = options.body ?? {};
  }

  get statusCode(): number {
    return statusOf(this.code);
  }
}

/** The JSON body of every 4xx/5xx answer. */
export interface ErrorBody {
  error: string;
  code: ErrorCode;
  field?: string;
  [extra: string]: unknown;
}

export function errorBody(error: XrefError): ErrorBody {
  const body: ErrorBody = { error: error.message, code: error.code };
  if (error.field !== undefined) body.field = error.field;
  return error instanceof HttpError ? { ...body, ...error.body } : body;
}
