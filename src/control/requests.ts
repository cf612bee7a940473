/**
 * Writing control inputs (docs/erasure.md): what the admin routes and the CLI share. Each request
 * is checked, given a request id, recorded as `requested` in `xref_control`, then written into the
 * log (`xref.ctl.<verb>` in XREF_IN) with the message id `ctl:<request>`, and returned once
 * JetStream acked it. The id is named only by its salted hash: its value is written nowhere.
 *
 * The record comes first: a status asked for right after the answer finds it, and the engine,
 * which applies the input later, only ever moves it on.
 */
import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ControlCommand, ControlVerb, HashedId } from '../domain/control.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { defaultLimits } from '../domain/limits.ts';
import { ControlStore } from '../nats/control-store.ts';
import { controlMsgId, subjects } from '../nats/subjects.ts';

interface RequestBase {
  /** Who asks, without a secret: `adminTokenName(token)` over HTTP, `cliUser()` from the CLI. */
  readonly by: string;
}

export interface ForgetRequest extends RequestBase {
  /** The user's kind (an internal kind, e.g. user_id). */
  readonly kind: string;
  /** The user's id. */
  readonly id: string;
  /** Suppress the cluster's ids afterwards (default true). */
  readonly suppress?: boolean;
}

export interface UnsuppressRequest extends RequestBase {
  readonly kind: string;
  readonly value: string;
}

export interface UnlinkRequest extends RequestBase {
  readonly kind: string;
  readonly value: string;
  /** Refuse later links of the identifier to the same user (default false). */
  readonly block?: boolean;
}

/** What a request function answers: the request id, to ask its status with. */
export interface Requested {
  readonly request: string;
}

const KIND = /^[A-Za-z0-9_-]{1,64}$/;
/** parseControl's bound on `by`. */
const BY_CHARS = 128;

/** A kind as control inputs name it, else an XREF_INVALID_ARGUMENT naming `kind` and the value. */
export function checkKind(kind: unknown): string {
  if (typeof kind !== 'string' || !KIND.test(kind)) throw new XrefError('XREF_INVALID_ARGUMENT', `kind must be a kind name ([A-Za-z0-9_-], 1 to 64 characters), got ${quote(kind)}`, { field: 'kind' });
  return kind;
}

/** An id or identifier value (non-empty, within the identifier limit), else an XREF_INVALID_ARGUMENT naming it. */
export function checkValue(value: unknown, name: 'id' | 'value'): string {
  const max = defaultLimits().idValueChars;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new XrefError('XREF_INVALID_ARGUMENT', `${name} must be a non-empty string of at most ${max} characters, got ${quote(value)}`, { field: name });
  }
  return value;
}

function checkFlag(value: unknown, name: 'suppress' | 'block', fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new XrefError('XREF_INVALID_ARGUMENT', `${name} must be true or false, got ${quote(value)}`, { field: name });
  return value;
}

function checkBy(by: unknown): string {
  if (typeof by !== 'string' || by.length === 0 || by.length > BY_CHARS) throw new XrefError('XREF_INVALID_ARGUMENT', `by must name who asks (1 to ${BY_CHARS} characters), got ${quote(by)}`, { field: 'by' });
  return by;
}

/** Who asks from the CLI: `cli:<os user>` (cut to parseControl's bound). */
export function cliUser(): string {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry for this uid (a container): the uid is still someone
    name = `uid-${process.getuid?.() ?? 'unknown'}`;
  }
  return `cli:${name}`.slice(0, BY_CHARS);
}

/**
 * Records and writes one control input. `command` builds it from the request id, the hashed id
 * and the time, so that what is written is exactly what parseControl reads.
 */
async function request(nc: NatsConnection, verb: ControlVerb, by: string, kind: string, value: string, command: (base: { request: string; by: string; at: string }, id: HashedId) => ControlCommand): Promise<Requested> {
  const store = new ControlStore(nc);
  const id: HashedId = { kind, hash: (await store.hasher())(kind, value) };
  const request = randomUUID().toLowerCase();
  const at = new Date().toISOString();
  await store.put({ verb, request, status: 'requested', by, requestedAt: at, id });
  const subject = subjects.ctl(verb);
  try {
    await jetstream(nc).publish(subject, JSON.stringify(command({ request, by, at }, id)), { msgID: controlMsgId(request) });
  } catch (error) {
    throw new XrefError('XREF_NATS_UNAVAILABLE', `writing the ${verb} request ${request} on ${subject}: ${(error as Error).message} (is XREF_IN there? xref serve makes it)`, { cause: error });
  }
  return { request };
}

/** Asks the engine to erase a user's whole identity cluster and, unless `suppress: false`, to drop later events carrying its ids. */
export async function requestForget(nc: NatsConnection, args: ForgetRequest): Promise<Requested> {
  const kind = checkKind(args.kind);
  const value = checkValue(args.id, 'id');
  const suppress = checkFlag(args.suppress, 'suppress', true);
  const by = checkBy(args.by);
  return request(nc, 'forget', by, kind, value, (base, user) => ({ verb: 'forget', ...base, user, suppress }));
}

/** Lifts the suppression of one id: it starts afresh, as an unknown identifier. */
export async function requestUnsuppress(nc: NatsConnection, args: UnsuppressRequest): Promise<Requested> {
  const kind = checkKind(args.kind);
  const value = checkValue(args.value, 'value');
  const by = checkBy(args.by);
  return request(nc, 'unsuppress', by, kind, value, (base, identifier) => ({ verb: 'unsuppress', ...base, identifier }));
}

/** Detaches one identifier from its user; with `block: true`, later links of it to the same user are refused. */
export async function requestUnlink(nc: NatsConnection, args: UnlinkRequest): Promise<Requested> {
  const kind = checkKind(args.kind);
  const value = checkValue(args.value, 'value');
  const block = checkFlag(args.block, 'block', false);
  const by = checkBy(args.by);
  return request(nc, 'unlink', by, kind, value, (base, identifier) => ({ verb: 'unlink', ...base, identifier, block }));
}
