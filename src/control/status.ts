/**
 * Where a forget stands (`GET /v1/forget/:request_id`, `xref erasure <request>`): the request's
 * record in `xref_control` (requested, erasing, erased: the engine's part and its receipt), and,
 * when the read model is run, the read model's receipt of the same request.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { isRequestId } from '../domain/control.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { ControlStore, type ForgetStatus } from '../nats/control-store.ts';

/** The read model's part of a forget: rows deleted per table, and what remains of the user. */
export interface ReadModelReceipt {
  readonly request: string;
  readonly deleted: Readonly<Record<string, number>>;
  readonly remaining: number;
  readonly at: string;
}

/** What the status needs of the read model: its receipt of a request (the read-model store has it). */
export interface ErasureReceipts {
  erasure(request: string): Promise<ReadModelReceipt | undefined>;
}

/** The answer of `GET /v1/forget/:request_id`. */
export interface ForgetStatusAnswer {
  readonly request_id: string;
  /** `done` once the engine's part is (`erased`) and the read model's too, or no read model is run. */
  readonly status: ForgetStatus;
  readonly requested_at: string;
  readonly by: string;
  /** The input sequence of the forget, once the engine applied it. */
  readonly seq?: number;
  readonly erased_at?: string;
  /** Per stream and bucket what the engine erased and what remains; `read_model`: the read model's part. */
  readonly receipt?: Readonly<Record<string, { erased: number; remaining: number } | ReadModelReceiptJson>>;
  readonly done: boolean;
}

export interface ReadModelReceiptJson {
  readonly deleted: Readonly<Record<string, number>>;
  readonly remaining: number;
  readonly at: string;
}

/** A request id as the API takes it: a lower-case UUID, else a 400 naming it. */
export function checkRequestId(request: unknown): string {
  if (!isRequestId(request)) throw new XrefError('XREF_INVALID_ARGUMENT', `request_id must be a request id (a lower-case UUID, as the forget answered), got ${quote(request)}`, { field: 'request_id' });
  return request;
}

/**
 * The status of the forget `request`. `readModel`: the read model that is run, whose receipt
 * `done` waits for; none: `erased` is `done`. An unknown request is an XREF_NOT_FOUND naming it.
 */
export async function forgetStatus(nc: NatsConnection, request: string, readModel?: ErasureReceipts): Promise<ForgetStatusAnswer> {
  checkRequestId(request);
  const record = await new ControlStore(nc).get('forget', request);
  if (record === undefined) throw new XrefError('XREF_NOT_FOUND', `forget request ${request} is not known`, { field: 'request_id' });
  const engineDone = record.status === 'erased' || record.status === 'done';
  const readModelReceipt = engineDone && readModel !== undefined ? await readModel.erasure(request) : undefined;
  const status: ForgetStatus = engineDone ? (readModel === undefined || readModelReceipt !== undefined ? 'done' : 'erased') : record.status;
  const receipt = {
    ...Object.fromEntries(Object.entries(record.receipt ?? {}).map(([store, { erased, remaining }]) => [store, { erased, remaining }])),
    ...(readModelReceipt === undefined ? {} : { read_model: { deleted: readModelReceipt.deleted, remaining: readModelReceipt.remaining, at: readModelReceipt.at } }),
  };
  return {
    request_id: request,
    status,
    requested_at: record.requestedAt,
    by: record.by,
    ...(record.seq === undefined ? {} : { seq: record.seq }),
    ...(record.erasedAt === undefined ? {} : { erased_at: record.erasedAt }),
    ...(Object.keys(receipt).length === 0 ? {} : { receipt }),
    done: status === 'done',
  };
}
