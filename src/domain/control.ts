import { InvalidEventError, quote, XrefError } from './errors.ts';
import { isIdHash } from './id-hash.ts';

/**
 * Control inputs: commands written into the log itself (`xref.ctl.<verb>` in XREF_IN), applied by
 * the engine at their place among the events, and again by every replay (docs/erasure.md). They
 * name ids only by their salted hash.
 */
export const CONTROL_VERBS = ['forget', 'unsuppress', 'unlink'] as const;
export type ControlVerb = (typeof CONTROL_VERBS)[number];

/** An id named by kind and salted hash. */
export interface HashedId {
  readonly kind: string;
  readonly hash: string;
}

interface CommandBase {
  /** A UUID: the message id is `ctl:<request>`, the tombstone and the audit record are keyed by it. */
  readonly request: string;
  /** Who asked, without a secret (`admin-token:<6 hex>`, `cli:<user>`). */
  readonly by: string;
  /** When it was asked (ISO 8601). */
  readonly at: string;
}

export interface ForgetCommand extends CommandBase {
  readonly verb: 'forget';
  readonly user: HashedId;
  /** Suppress the cluster's ids afterwards (default true). */
  readonly suppress: boolean;
}

export interface UnsuppressCommand extends CommandBase {
  readonly verb: 'unsuppress';
  readonly identifier: HashedId;
}

export interface UnlinkCommand extends CommandBase {
  readonly verb: 'unlink';
  readonly identifier: HashedId;
  /** Refuse later links of the identifier to the same user. */
  readonly block: boolean;
}

export type ControlCommand = ForgetCommand | UnsuppressCommand | UnlinkCommand;

const REQUEST = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KIND = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether a request id has the shape commands use (a lower-case UUID). */
export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && REQUEST.test(value);
}

function hashedId(value: unknown, field: string): HashedId {
  if (typeof value !== 'object' || value === null) throw new InvalidEventError(field, value, 'must be an object { kind, hash }');
  const { kind, hash } = value as Record<string, unknown>;
  if (typeof kind !== 'string' || !KIND.test(kind)) throw new InvalidEventError(`${field}.kind`, kind, 'must be a kind name ([A-Za-z0-9_-], 1 to 64 characters)');
  if (!isIdHash(hash)) throw new InvalidEventError(`${field}.hash`, hash, 'must be a salted hash (64 lower-case hex characters), never the id itself');
  return { kind, hash };
}

/** Reads a control input of `verb` (from its subject); a malformed one throws naming the field and value. */
export function parseControl(verb: ControlVerb, value: unknown): ControlCommand {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidEventError('control input', value, 'must be a JSON object');
  const input = value as Record<string, unknown>;
  if (input.verb !== verb) throw new InvalidEventError('verb', input.verb, `must be ${quote(verb)}, the verb of its subject`);
  if (!isRequestId(input.request)) throw new InvalidEventError('request', input.request, 'must be a request id (a lower-case UUID)');
  if (typeof input.by !== 'string' || input.by.length === 0 || input.by.length > 128) throw new InvalidEventError('by', input.by, 'must name who asked (1 to 128 characters)');
  if (typeof input.at !== 'string' || Number.isNaN(Date.parse(input.at))) throw new InvalidEventError('at', input.at, 'must be an ISO 8601 time');
  const base = { request: input.request, by: input.by, at: input.at };
  switch (verb) {
    case 'forget': {
      if (input.suppress !== undefined && typeof input.suppress !== 'boolean') throw new InvalidEventError('suppress', input.suppress, 'must be true or false');
      return { verb, ...base, user: hashedId(input.user, 'user'), suppress: input.suppress !== false };
    }
    case 'unsuppress':
      return { verb, ...base, identifier: hashedId(input.identifier, 'identifier') };
    case 'unlink': {
      if (input.block !== undefined && typeof input.block !== 'boolean') throw new InvalidEventError('block', input.block, 'must be true or false');
      return { verb, ...base, identifier: hashedId(input.identifier, 'identifier'), block: input.block === true };
    }
  }
}

/** The verb of a control subject's last token, or an error naming it. */
export function controlVerb(token: string): ControlVerb {
  if ((CONTROL_VERBS as readonly string[]).includes(token)) return token as ControlVerb;
  throw new XrefError('XREF_INVALID_EVENT', `subject verb ${quote(token)} is not a control verb (known: ${CONTROL_VERBS.join(', ')})`, { field: 'subject' });
}
