/**
 * Request contexts: a fastify plugin (`trackerPlugin`) and a plain node `http` / express
 * middleware (`trackerMiddleware`). Each opens a context (default name `request`) holding
 * `user_id`, `session_id`, `ip`, `user_agent`, `path` and `referer` around the handling of a
 * request, so every event emitted while handling it carries them. fastify is used for its types
 * only: this file loads nothing of it.
 *
 * Fastify runs the hooks after the body is read (preValidation, preHandler, the handler) from the
 * request stream's events. Whether those run in the async context the onRequest hook opened
 * depends on the Node version and the body parser (on Node 20 with fastify's own parsers they
 * do), so the plugin also keeps an AsyncResource made inside the context and re-enters it in a
 * preValidation hook: the context holds either way.
 */
import { AsyncResource } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { InvalidConfigError } from '../domain/errors.ts';
import type { Tracker } from './tracker.ts';

export interface RequestContextOptions<Request> {
  tracker: Tracker;
  /** The signed-in user's id for `user_id` (a string, or an integer); undefined for an anonymous visitor (the key is left out). */
  userId?: (request: Request) => string | number | undefined;
  /** The session id for `session_id` (default: the `x-session-id` header, else the cookie `sessionCookie`). */
  sessionId?: (request: Request) => string | undefined;
  /** The cookie read for `session_id` when there is no `x-session-id` header (default `session_id`). */
  sessionCookie?: string;
  /** The context's name (default `request`). */
  contextName?: string;
}

export interface TrackerPluginOptions extends RequestContextOptions<FastifyRequest> {
  /**
   * When the context opens (default `onRequest`: events from every later hook carry it). Use
   * `preHandler` when `userId` needs what an auth hook sets on the request (register the tracker
   * plugin after that hook then).
   */
  hook?: 'onRequest' | 'preValidation' | 'preHandler';
}

export type TrackerMiddlewareOptions = RequestContextOptions<IncomingMessage & { ip?: string; originalUrl?: string }>;

type Headers = IncomingMessage['headers'];

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first.length > 0 ? first : undefined;
}

/** The value of cookie `name` in a Cookie header, URI-decoded when it can be. */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      // not URI-encoded: kept as it is
    }
    return value.length > 0 ? value : undefined;
  }
  return undefined;
}

function pathOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

interface Resolved<Request> {
  tracker: Tracker;
  contextName: string;
  values(request: Request, headers: Headers, ip: string | undefined, url: string | undefined): Record<string, unknown>;
}

function resolve<Request>(options: RequestContextOptions<Request>, what: string): Resolved<Request> {
  if (typeof options !== 'object' || options === null) throw new InvalidConfigError(`${what} options`, options, 'must be an object { tracker, userId? }');
  const { tracker, userId, sessionId, sessionCookie = 'session_id', contextName = 'request' } = options;
  if (typeof tracker !== 'object' || tracker === null || typeof tracker.context !== 'function') throw new InvalidConfigError(`${what} tracker`, tracker, 'must be a tracker (from createTracker)');
  if (userId !== undefined && typeof userId !== 'function') throw new InvalidConfigError(`${what} userId`, userId, 'must be a function (request) => string | undefined');
  if (sessionId !== undefined && typeof sessionId !== 'function') throw new InvalidConfigError(`${what} sessionId`, sessionId, 'must be a function (request) => string | undefined');
  if (typeof sessionCookie !== 'string' || sessionCookie.length === 0) throw new InvalidConfigError(`${what} sessionCookie`, sessionCookie, 'must be a non-empty cookie name');
  if (typeof contextName !== 'string' || contextName.length === 0) throw new InvalidConfigError(`${what} contextName`, contextName, 'must be a non-empty string');
  const call = <T>(fn: ((request: Request) => T) | undefined, request: Request, field: string): T | undefined => {
    if (!fn) return undefined;
    try {
      return fn(request);
    } catch (error) {
      tracker.logger.warn({ err: error }, `${what} ${field}(request) threw: the context goes without ${field === 'userId' ? 'user_id' : 'session_id'}`);
      return undefined;
    }
  };
  return {
    tracker,
    contextName,
    values(request, headers, ip, url) {
      const values: Record<string, unknown> = {};
      const user = call(userId, request, 'userId');
      if ((typeof user === 'string' && user.length > 0) || (typeof user === 'number' && Number.isSafeInteger(user))) values.user_id = user;
      const session = sessionId ? call(sessionId, request, 'sessionId') : (header(headers, 'x-session-id') ?? cookieValue(header(headers, 'cookie'), sessionCookie));
      if (typeof session === 'string' && session.length > 0) values.session_id = session;
      if (ip !== undefined && ip.length > 0) values.ip = ip;
      const userAgent = header(headers, 'user-agent');
      if (userAgent !== undefined) values.user_agent = userAgent;
      const path = pathOf(url);
      if (path !== undefined) values.path = path;
      const referer = header(headers, 'referer') ?? header(headers, 'referrer');
      if (referer !== undefined) values.referer = referer;
      return values;
    },
  };
}

const RESOURCE = Symbol('xref.tracker.requestResource');
type WithResource = { [RESOURCE]?: AsyncResource };

/**
 * The fastify plugin: `app.register(trackerPlugin, { tracker, userId: (request) => … })`. It
 * applies to the whole app (not encapsulated), so register it before the routes and before other
 * hooks whose events should carry the context.
 */
export function trackerPlugin(app: FastifyInstance, options: TrackerPluginOptions, done: (error?: Error) => void): void {
  let resolved: Resolved<FastifyRequest>;
  const hook = options?.hook ?? 'onRequest';
  try {
    resolved = resolve(options, 'trackerPlugin');
    if (hook !== 'onRequest' && hook !== 'preValidation' && hook !== 'preHandler') throw new InvalidConfigError('trackerPlugin hook', hook, 'must be onRequest, preValidation or preHandler');
  } catch (error) {
    done(error as Error);
    return;
  }
  const { tracker, contextName } = resolved;
  const open = (request: FastifyRequest, _reply: FastifyReply, next: HookHandlerDoneFunction) => {
    let values: Record<string, unknown>;
    try {
      values = resolved.values(request, request.headers, request.ip, request.url);
    } catch (error) {
      tracker.logger.warn({ err: error }, 'trackerPlugin could not read the request: the context opens empty');
      values = {};
    }
    tracker.context(contextName, values, () => {
      (request as WithResource)[RESOURCE] = new AsyncResource('xref-tracker-request');
      next();
    });
  };
  app.addHook(hook as 'onRequest', open);
  if (hook === 'onRequest') {
    app.addHook('preValidation', (request, _reply, next) => {
      const resource = (request as WithResource)[RESOURCE];
      if (resource) resource.runInAsyncScope(next);
      else next();
    });
  }
  done();
}
Object.assign(trackerPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'xref-tracker',
  [Symbol.for('plugin-meta')]: { name: 'xref-tracker', fastify: '5.x' },
});

/**
 * Node `http` / express middleware: `(req, res, next)` runs `next()` inside the request context.
 * Mount it after body parsers that call `next` from stream events (express.json()), so the
 * handlers after it run inside the context.
 */
export function trackerMiddleware(options: TrackerMiddlewareOptions): (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void {
  const resolved = resolve(options, 'trackerMiddleware');
  const { tracker, contextName } = resolved;
  return (req, _res, next) => {
    const request = req as IncomingMessage & { ip?: string; originalUrl?: string };
    let values: Record<string, unknown>;
    try {
      values = resolved.values(request, request.headers, typeof request.ip === 'string' ? request.ip : request.socket?.remoteAddress, request.originalUrl ?? request.url);
    } catch (error) {
      tracker.logger.warn({ err: error }, 'trackerMiddleware could not read the request: the context opens empty');
      values = {};
    }
    tracker.context(contextName, values, () => next());
  };
}
