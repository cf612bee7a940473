/**
 * Who may call a set of routes: write keys (HTTP Basic user name, Segment's convention) send
 * events, read tokens (`Authorization: Bearer <token>`) read, admin tokens (Bearer too) forget,
 * unsuppress and unlink. A set of routes is one encapsulated plugin that calls
 * `requireCredential` with the credential it accepts; a write key never reads, a read token never
 * writes nor administers, an admin token neither reads nor writes, since each hook checks its own
 * scheme against its own secrets (and the settings refuse a secret listed as two kinds).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Settings } from '../settings.ts';
import { XrefError } from '../domain/errors.ts';
import { HttpError } from './errors.ts';

export const INSECURE_NO_AUTH = 'insecure-no-auth';
export type WriteKeysSetting = ReadonlySet<string> | typeof INSECURE_NO_AUTH;
/** The accepted read tokens, or 'insecure-no-auth'; none at all (undefined): the read routes answer 401. */
export type ReadTokensSetting = ReadonlySet<string> | typeof INSECURE_NO_AUTH;

/** The accepted admin tokens; none (undefined): the admin routes answer 401. There is no insecure mode: erasing people always takes a token. */
export type AdminTokensSetting = ReadonlySet<string>;

export const AUTH_REALM = 'Basic realm="xref"';
export const READ_REALM = 'Bearer realm="xref"';
export const ADMIN_REALM = 'Bearer realm="xref admin"';

/**
 * The write keys of a collector start: the configured keys, or 'insecure-no-auth' when asked
 * for explicitly. Neither: an XrefError telling how to configure it.
 */
export function checkAuthConfig(settings: Pick<Settings, 'writeKeys' | 'insecureNoAuth'>, flags: { insecureNoAuth?: boolean } = {}): WriteKeysSetting {
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

/** The token of an `Authorization: Bearer <token>` header; undefined when the header is not Bearer. */
export function bearerToken(header: string): string | undefined {
  return /^\s*bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Who an admin token is, without the secret: `admin-token:` and the first six hex characters of its SHA-256 (the `by` of a control input). */
export function adminTokenName(token: string): string {
  return `admin-token:${digest(token).toString('hex').slice(0, 6)}`;
}

/** Checks secrets in time independent of how much of one matched. Holds digests, not secrets. */
export class SecretVerifier {
  private readonly digests: readonly Buffer[];

  /** `field`: the variable the secrets come from, named when there are none. */
  constructor(secrets: Iterable<string>, field: string) {
    this.digests = [...secrets].map(digest);
    if (this.digests.length === 0) throw new XrefError('XREF_INVALID_CONFIG', `a verifier of ${field} needs at least one entry`, { field });
  }

  verify(secret: string): boolean {
    const candidate = digest(secret);
    let found = false;
    for (const known of this.digests) found = timingSafeEqual(candidate, known) || found;
    return found;
  }
}

/** What a set of routes accepts. */
export type Credential =
  | {
      readonly kind: 'write-key';
      readonly keys: WriteKeysSetting;
      /** Segment's other convention: without an Authorization header, "writeKey" in the JSON body (checked once the body is read). */
      readonly inBody?: boolean;
    }
  | { readonly kind: 'read-token'; readonly tokens: ReadTokensSetting | undefined }
  | { readonly kind: 'admin-token'; readonly tokens: AdminTokensSetting | undefined };

/**
 * The hooks that enforce a credential: onRequest reads the header; preHandler, for `inBody` only,
 * the body. None for 'insecure-no-auth', which accepts every request.
 */
export interface AuthHooks {
  readonly onRequest?: (request: FastifyRequest) => Promise<void>;
  readonly preHandler?: (request: FastifyRequest) => Promise<void>;
}

/**
 * The hooks for one credential; `refused` is called before each 401 (to count it). Built once per
 * set of routes: per request they allocate nothing but the error they throw.
 */
export function authHooks(credential: Credential, refused: () => void = () => undefined): AuthHooks {
  /** Counts the refusal and hands back the error to throw. */
  const refuse = (error: HttpError): HttpError => {
    refused();
    return error;
  };
  if (credential.kind !== 'write-key') {
    const { tokens } = credential;
    if (tokens === INSECURE_NO_AUTH) return {};
    const words = BEARER_WORDS[credential.kind];
    if (tokens === undefined) {
      const closed = async () => {
        throw refuse(noTokens(words));
      };
      return { onRequest: closed };
    }
    const verifier = new SecretVerifier(tokens, words.variable);
    const onRequest = async (request: FastifyRequest) => {
      const header = request.headers.authorization;
      if (header === undefined || header === '') throw refuse(missingToken(words));
      const token = bearerToken(header);
      if (token === undefined) throw refuse(basicUserName(header) === undefined ? notBearer(words) : writeKeyCannot(words));
      if (!verifier.verify(token)) throw refuse(wrongToken(words));
    };
    return { onRequest };
  }

  const { keys, inBody = false } = credential;
  if (keys === INSECURE_NO_AUTH) return {};
  const verifier = new SecretVerifier(keys, 'XREF_WRITE_KEYS');
  /** Requests whose write key is to be read from the body (no Authorization header). */
  const keyInBody = new WeakSet<FastifyRequest>();
  const onRequest = async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      if (inBody) {
        keyInBody.add(request);
        return;
      }
      throw refuse(missingKey(false));
    }
    const key = basicUserName(header);
    if (key === undefined) throw refuse(notBasic());
    if (!verifier.verify(key)) throw refuse(wrongKey('header'));
  };
  const preHandler = async (request: FastifyRequest) => {
    if (!keyInBody.has(request)) return;
    const key = (request.body as { writeKey?: unknown } | null)?.writeKey;
    if (typeof key !== 'string' || key === '') throw refuse(missingKey(true));
    if (!verifier.verify(key)) throw refuse(wrongKey('body'));
  };
  return inBody ? { onRequest, preHandler } : { onRequest };
}

/**
 * Every route of `scope` (an encapsulated plugin's instance) takes `credential`. Call it before
 * declaring the routes; the routes of other plugins are not affected.
 */
export function requireCredential(scope: FastifyInstance, credential: Credential, refused?: () => void): void {
  const hooks = authHooks(credential, refused);
  if (hooks.onRequest !== undefined) scope.addHook('onRequest', hooks.onRequest);
  if (hooks.preHandler !== undefined) scope.addHook('preHandler', hooks.preHandler);
}

const HOW = 'send the write key as the user name of HTTP Basic auth (Authorization: Basic base64("<write key>:"))';

function missingKey(bodyAllowed: boolean): HttpError {
  return unauthorized(`a write key is required: ${HOW}${bodyAllowed ? ', or as "writeKey" in the JSON body' : ''}`);
}

function notBasic(): HttpError {
  return unauthorized(`the Authorization header is not HTTP Basic with a user name: ${HOW}`);
}

function wrongKey(where: 'header' | 'body'): HttpError {
  return unauthorized(`the write key in the ${where === 'header' ? 'Authorization header' : 'body (writeKey)'} is not one of this collector's keys (XREF_WRITE_KEYS)`);
}

function unauthorized(message: string): HttpError {
  return new HttpError('XREF_UNAUTHORIZED', message, { headers: { 'www-authenticate': AUTH_REALM } });
}

/** How the 401s of a bearer credential name it. */
interface BearerWords {
  /** e.g. 'read token'. */
  readonly name: string;
  /** With its article: 'a read token'. */
  readonly one: string;
  /** Where its secrets are set. */
  readonly variable: string;
  /** What a write key cannot do here. */
  readonly job: string;
  readonly realm: string;
}

const BEARER_WORDS: Readonly<Record<'read-token' | 'admin-token', BearerWords>> = {
  'read-token': { name: 'read token', one: 'a read token', variable: 'XREF_READ_TOKENS', job: 'read', realm: READ_REALM },
  'admin-token': { name: 'admin token', one: 'an admin token', variable: 'XREF_ADMIN_TOKENS', job: 'forget, unsuppress or unlink', realm: ADMIN_REALM },
};

const how = (w: BearerWords) => `send ${w.one} as Authorization: Bearer <${w.name}> (one of ${w.variable})`;

function missingToken(w: BearerWords): HttpError {
  return bearerUnauthorized(w, `${w.one} is required: ${how(w)}`);
}

function writeKeyCannot(w: BearerWords): HttpError {
  return bearerUnauthorized(w, `the Authorization header is HTTP Basic (a write key), and write keys cannot ${w.job}: ${how(w)}`);
}

function notBearer(w: BearerWords): HttpError {
  return bearerUnauthorized(w, `the Authorization header is not a Bearer token: ${how(w)}`);
}

function wrongToken(w: BearerWords): HttpError {
  return bearerUnauthorized(w, `the ${w.name} in the Authorization header is not one of this collector's ${w.name}s (${w.variable})`);
}

function noTokens(w: BearerWords): HttpError {
  return bearerUnauthorized(w, `this route takes ${w.one} (Authorization: Bearer <${w.name}>), and this collector has none: set ${w.variable}=token1,token2`);
}

function bearerUnauthorized(w: BearerWords, message: string): HttpError {
  return new HttpError('XREF_UNAUTHORIZED', message, { headers: { 'www-authenticate': w.realm } });
}
