import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServiceSettings } from '../domain/config.ts';
import { XrefError } from '../domain/errors.ts';
import { HttpError } from './errors.ts';

export const INSECURE_NO_AUTH = 'insecure-no-auth';
export type WriteKeysSetting = ReadonlySet<string> | typeof INSECURE_NO_AUTH;

export const AUTH_REALM = 'Basic realm="xref"';

/**
 * The write keys of a collector start: the configured keys, or 'insecure-no-auth' when asked
 * for explicitly. Neither: an XrefError telling how to configure it.
 */
export function checkAuthConfig(settings: Pick<ServiceSettings, 'writeKeys' | 'insecureNoAuth'>, flags: { insecureNoAuth?: boolean } = {}): WriteKeysSetting {
  if (settings.writeKeys.length > 0) return new Set(settings.writeKeys);
  if (flags.insecureNoAuth === true || settings.insecureNoAuth) return INSECURE_NO_AUTH;
  throw new XrefError(
    'XREF_INVALID_CONFIG',
    'the HTTP collector has no write keys: set XREF_WRITE_KEYS=key1,key2 (clients send a key as the HTTP Basic user name), or pass --insecure-no-auth (XREF_INSECURE_NO_AUTH=1) to accept every request',
    { field: 'XREF_WRITE_KEYS' },
  );
}

/**
 * The write key of an `Authorization: Basic base64(key:password)` header (the password is
 * ignored; Segment sends none). undefined when the header is not Basic or not decodable.
 */
export function basicUserName(header: string): string | undefined {
  const match = /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = colon === -1 ? decoded : decoded.slice(0, colon);
  return user.length === 0 ? undefined : user;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Checks keys in time independent of how much of a key matched. Holds digests, not keys. */
export class WriteKeyVerifier {
  private readonly digests: readonly Buffer[];

  constructor(keys: Iterable<string>) {
    this.digests = [...keys].map(digest);
    if (this.digests.length === 0) throw new XrefError('XREF_INVALID_CONFIG', 'a write key verifier needs at least one key', { field: 'XREF_WRITE_KEYS' });
  }

  verify(key: string): boolean {
    const candidate = digest(key);
    let found = false;
    for (const known of this.digests) found = timingSafeEqual(candidate, known) || found;
    return found;
  }
}

const HOW = 'send the write key as the user name of HTTP Basic auth (Authorization: Basic base64("<write key>:"))';

export function missingKey(bodyAllowed: boolean): HttpError {
  return unauthorized(`a write key is required: ${HOW}${bodyAllowed ? ', or as "writeKey" in the JSON body' : ''}`);
}

export function notBasic(): HttpError {
  return unauthorized(`the Authorization header is not HTTP Basic with a user name: ${HOW}`);
}

export function wrongKey(where: 'header' | 'body'): HttpError {
  return unauthorized(`the write key in the ${where === 'header' ? 'Authorization header' : 'body (writeKey)'} is not one of this collector's keys (XREF_WRITE_KEYS)`);
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, 'XREF_UNAUTHORIZED', message, { headers: { 'www-authenticate': AUTH_REALM } });
}
