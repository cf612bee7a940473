/**
 * Every NATS name xref uses: streams, subjects, consumers, KV buckets and keys, headers, in one
 * module (docs/architecture.md, NATS layout). Identifier values become subject tokens and KV keys through `encodeToken`.
 */
import { XrefError } from '../domain/errors.ts';

export const STREAMS = {
  in: 'XREF_IN',
  groups: 'XREF_GROUPS',
  unmatched: 'XREF_UNMATCHED',
  audit: 'XREF_AUDIT',
  /** Every rejection, wherever it happened (the collector, `xref publish`, the engine): see src/domain/error-record.ts. */
  errors: 'XREF_ERRORS',
} as const;

export const BUCKETS = {
  links: 'xref_links',
  snapshots: 'xref_snapshots',
  /** Which process holds a consumer of the log (key: the consumer's name). */
  leases: 'xref_leases',
  /** The installation's salt, and each control request's record (docs/erasure.md). */
  control: 'xref_control',
} as const;

/** `xref_control` keys: the salt, and per request its record (a forget's is its tombstone and receipt). */
export const controlKeys = {
  salt: 'salt',
  request: (verb: string, request: string) => `${verb}.${request}`,
  /** Every record of one verb. */
  ofVerb: (verb: string) => `${verb}.>`,
} as const;

/**
 * The consumers of the log, by name: each reads XREF_IN with durable consumers of its own (see
 * `durableName`), and is the key of its lease in `xref_leases`.
 */
export const CONSUMERS = {
  /** The streaming engine. */
  engine: 'xref-engine',
  /** The read-model projection: `xref-projection-<database instance id>` on each stream it reads. */
  projection: 'xref-projection',
} as const;

/**
 * A consumer's durable consumer on the log: its name, and under a lease `<name>-<epoch>`, one per
 * holding (a fenced holder whose client pulls again finds its own consumer gone instead of taking
 * inputs meant for the next).
 */
export function durableName(consumer: string, epoch = 0): string {
  return epoch === 0 ? consumer : `${consumer}-${epoch}`;
}

/**
 * Whether `durable` is one of `consumer`'s durable consumers (`<name>` or `<name>-<epoch>`): never
 * another consumer's, even one whose name starts with this one's (`xref-engine-audit`).
 */
export function isDurableOf(consumer: string, durable: string): boolean {
  return durable === consumer || (durable.startsWith(`${consumer}-`) && /^[0-9]+$/.test(durable.slice(consumer.length + 1)));
}

const SAFE = /^[A-Za-z0-9_-]$/;
const ALL_SAFE = /^[A-Za-z0-9_-]+$/;

/**
 * Encodes any string as one NATS subject token that is also a valid KV key part: `[A-Za-z0-9_-]`
 * stay as they are; every other UTF-8 byte becomes `=XX` (upper-case hex), `=` included; the empty
 * string becomes `=`. (`=` is legal in both; KV keys refuse `~`, `%` and the like.) Reversible by
 * `decodeToken`.
 */
export function encodeToken(value: string): string {
  if (ALL_SAFE.test(value)) return value;
  if (value.length === 0) return '=';
  let out = '';
  for (const char of value) {
    if (SAFE.test(char)) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8')) out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeToken(token: string): string {
  if (token === '=') return '';
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token[i]!;
    if (c === '=') {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new XrefError('XREF_INVALID_ARGUMENT', `not an encoded token: ${JSON.stringify(token)}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(c.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The `<source>` token of `xref.in.<source>` per ingest path. */
export const SOURCES = {
  /** Events POSTed to the HTTP collector (native and Segment routes). */
  http: 'http',
} as const;

const IN_PREFIX = 'xref.in.';
const CTL_PREFIX = 'xref.ctl.';

export const subjects = {
  /** Where events come in, per source. */
  in: (source: string) => `${IN_PREFIX}${encodeToken(source)}`,
  /** What every input subject starts with. */
  inPrefix: IN_PREFIX,
  inAll: `${IN_PREFIX}>`,
  /** Control inputs (forget, unsuppress, unlink), in XREF_IN too: closed to event publishers. */
  ctl: (verb: string) => `${CTL_PREFIX}${verb}`,
  ctlPrefix: CTL_PREFIX,
  ctlAll: `${CTL_PREFIX}>`,
  /** Every event resolved to one user. */
  group: (kind: string, id: string) => `xref.groups.${kind}.${encodeToken(id)}`,
  groupsAll: 'xref.groups.>',
  unmatched: (kind: string) => `xref.unmatched.${kind}`,
  unmatchedAll: 'xref.unmatched.>',
  audit: (reason: string) => `xref.audit.${reason}`,
  auditAll: 'xref.audit.>',
  /** An error record, by reason (`schema_violation`, `invalid_event`, …). */
  errors: (reason: string) => `xref.errors.${encodeToken(reason)}`,
  errorsAll: 'xref.errors.>',
} as const;

/** Whether a subject matches a filter (`*`: one token, `>`: one or more at the end). */
export function subjectMatches(filter: string, subject: string): boolean {
  const want = filter.split('.');
  const have = subject.split('.');
  for (let i = 0; i < want.length; i++) {
    if (want[i] === '>') return have.length > i;
    if (i >= have.length || (want[i] !== '*' && want[i] !== have[i])) return false;
  }
  return want.length === have.length;
}

/** The message id of a control input: one input per request, however often it is sent. */
export function controlMsgId(request: string): string {
  return `ctl:${request}`;
}

/** KV key of a third-party identifier in `xref_links`. */
export function linkKey(kind: string, value: string): string {
  return `${kind}.${encodeToken(value)}`;
}

const IDENTIFIER_PREFIX = 'i.';
const USER_PREFIX = 'u.';

/** `xref_snapshots` keys: buffering identifier actors, user actors, and the engine checkpoint. */
export const snapshotKeys = {
  identifier: (key: string) => `${IDENTIFIER_PREFIX}${addressKey(key)}`,
  user: (key: string) => `${USER_PREFIX}${addressKey(key)}`,
  /** What the key of every identifier actor's snapshot starts with. */
  identifierPrefix: IDENTIFIER_PREFIX,
  /** What the key of every user actor's snapshot starts with. */
  userPrefix: USER_PREFIX,
  meta: 'meta.engine',
} as const;

/** An actor's snapshot key → which machine's actor it is and its address (`kind:value`). */
export function snapshotOwner(key: string): { machine: 'identifier' | 'user'; address: string } {
  const machine = key.startsWith(IDENTIFIER_PREFIX) ? 'identifier' : 'user';
  return { machine, address: keyAddress(key.slice((machine === 'identifier' ? IDENTIFIER_PREFIX : USER_PREFIX).length)) };
}

/** `kind:value` (an identifier or user key) → `kind.<encoded value>`. */
export function addressKey(key: string): string {
  const at = key.indexOf(':');
  return linkKey(key.slice(0, at), key.slice(at + 1));
}

/** `kind.<encoded value>` → `kind:value`. */
export function keyAddress(kvKey: string): string {
  const at = kvKey.indexOf('.');
  return `${kvKey.slice(0, at)}:${decodeToken(kvKey.slice(at + 1))}`;
}

/** The stream a KV bucket is kept in. */
export function kvStream(bucket: string): string {
  return `KV_${bucket}`;
}

/** What the subject of every key of a KV bucket starts with. */
export function kvSubjectPrefix(bucket: string): string {
  return `$KV.${bucket}.`;
}

/** The subject a KV bucket stores a key under (for pipelined writes). */
export function kvSubject(bucket: string, key: string): string {
  return `${kvSubjectPrefix(bucket)}${key}`;
}

/** Message headers JetStream reads or sets. */
export const HEADERS = {
  /** The dedup id: the same id within the stream's duplicate window is stored once. */
  msgId: 'Nats-Msg-Id',
  /** Stored only if the subject's last message is at this sequence (compare-and-set). */
  expectedLastSubjectSequence: 'Nats-Expected-Last-Subject-Sequence',
  /**
   * On a resolved event in XREF_GROUPS: `{"seq":…,"user":…,"via":…,"at":…,"stored":…}`, the
   * message without its event (so that the projection reads the stream headers only), the input
   * that resolved it, and how far every output was stored (src/service/outputs.ts).
   */
  resolution: 'Xref-Resolution',
  /**
   * On a retraction in XREF_GROUPS (an unlink took an event back from the user), in place of
   * `Xref-Resolution`: the message itself, `{"retract":…,"output":…,"reason":…,"seq":…,"user":…}`.
   */
  retraction: 'Xref-Retraction',
  /** On a KV bucket's messages: `DEL` or `PURGE` for a deleted key. */
  kvOperation: 'KV-Operation',
} as const;

/**
 * What the reply subject of a message a JetStream consumer delivers starts with: the ack subject
 * (`$JS.ACK.<stream>.<consumer>.…`), which also holds the message's stream sequence.
 */
export const JS_ACK_PREFIX = '$JS.ACK.';
