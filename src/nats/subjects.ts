/**
 * Every NATS name xref uses: streams, subjects, KV buckets and keys, in one module
 * (docs/architecture.md, NATS layout). Identifier values become subject tokens and KV keys through `encodeToken`.
 */

export const STREAMS = {
  in: 'XREF_IN',
  groups: 'XREF_GROUPS',
  unmatched: 'XREF_UNMATCHED',
  audit: 'XREF_AUDIT',
} as const;

export const BUCKETS = {
  links: 'xref_links',
  snapshots: 'xref_snapshots',
  /** Which process holds a consumer of the log (key: the consumer's name). */
  leases: 'xref_leases',
} as const;

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
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new Error(`not an encoded token: ${JSON.stringify(token)}`);
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

export const subjects = {
  /** Where events come in, per source. */
  in: (source: string) => `xref.in.${encodeToken(source)}`,
  inAll: 'xref.in.>',
  /** Every event resolved to one user. */
  group: (kind: string, id: string) => `xref.groups.${kind}.${encodeToken(id)}`,
  groupsAll: 'xref.groups.>',
  unmatched: (kind: string) => `xref.unmatched.${kind}`,
  unmatchedAll: 'xref.unmatched.>',
  audit: (reason: string) => `xref.audit.${reason}`,
  auditAll: 'xref.audit.>',
} as const;

/** KV key of a third-party identifier in `xref_links`. */
export function linkKey(kind: string, value: string): string {
  return `${kind}.${encodeToken(value)}`;
}

/** `xref_snapshots` keys: buffering identifier actors, user actors, and the engine checkpoint. */
export const snapshotKeys = {
  identifier: (key: string) => `i.${addressKey(key)}`,
  user: (key: string) => `u.${addressKey(key)}`,
  meta: 'meta.engine',
} as const;

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

/** The subject a KV bucket stores a key under (for pipelined writes). */
export function kvSubject(bucket: string, key: string): string {
  return `$KV.${bucket}.${key}`;
}
