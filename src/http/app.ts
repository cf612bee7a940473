/**
 * The HTTP collector: a fastify app built from its dependencies, not listening (tests use
 * `inject()`; `xref serve` calls `listen`). It is the server (server.ts) with its route plugins:
 *
 *   collector-routes.ts  POST /v1/events, /v1/batch, /v1/{track,…}, GET /v1/projects/:key/settings   write key
 *   query-routes.ts      GET /v1/events, /v1/events/:id, /v1/users/…, /v1/identifiers/…, …        read token
 *   admin-routes.ts      POST /v1/users/:kind/:id/forget, GET /v1/forget/:request_id, …           admin token
 *   health-routes.ts     GET /livez, /readyz, /metrics                                             open
 *
 * A 2xx means every accepted event of the request is stored (JetStream acked it). Each set of
 * routes is one plugin calling `requireCredential` with the credential it takes; the query routes
 * are there only when the app is given the read model's queries, the admin routes only when it
 * is given the control requests.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../domain/config.ts';
import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import type { ControlActions } from '../control/actions.ts';
import type { ReadModelQueries } from '../projection/queries.ts';
import { ADMIN_ROUTES_TEXT, adminRoutes } from './admin-routes.ts';
import { type AdminTokensSetting, INSECURE_NO_AUTH, type ReadTokensSetting, type WriteKeysSetting } from './auth.ts';
import { type PublicOrigin, parsePublicUrl } from './cdn-settings.ts';
import { collectorRoutes } from './collector-routes.ts';
import { type Readiness, healthRoutes } from './health-routes.ts';
import type { XrefMetrics } from './metrics.ts';
import { QUERY_ROUTES_TEXT, queryRoutes } from './query-routes.ts';
import { DEFAULT_SEGMENT_USER_KIND, SEGMENT_KINDS } from './segment.ts';
import { createServer, isShuttingDown, markShuttingDown } from './server.ts';
import type { EventSink } from './sink.ts';

export { isShuttingDown, markShuttingDown };
export type { Readiness };

export interface AppDeps {
  /** Where accepted events go; a 2xx is sent only once it confirmed every one. */
  readonly publisher: EventSink;
  /** The accepted write keys, or 'insecure-no-auth' (from `checkAuthConfig`). */
  readonly writeKeys: WriteKeysSetting;
  /**
   * The read tokens (`Authorization: Bearer`) the read routes will accept, or 'insecure-no-auth'
   * (from `collectorSettings`); none: those routes answer 401.
   */
  readonly readTokens?: ReadTokensSetting;
  /** The read model's answers: given, the query routes (GET /v1/events, /v1/users, …) are served. */
  readonly queries?: ReadModelQueries;
  /** The control requests (`controlActions(nc, readModel)`): given, the admin routes (forget, unsuppress, unlink, a forget's status) are served. */
  readonly control?: ControlActions;
  /** The admin tokens (`Authorization: Bearer`, XREF_ADMIN_TOKENS) the admin routes accept; none: they answer 401. */
  readonly adminTokens?: AdminTokensSetting;
  /** eventBytes (per event) and batchBytes (per request body) are enforced here. */
  readonly limits: Limits;
  readonly logger: Logger;
  /** NATS connected, streams bound, engine caught up (see `natsReadiness`). */
  readonly readiness: () => Promise<Readiness>;
  /** From `createMetrics()`: served on /metrics, counted here. */
  readonly metrics: XrefMetrics;
  /** How long a request waits for the sink before a 503 with Retry-After. */
  readonly publishDeadlineMs: number;
  /** The identity config: its payload rules (schemas, unknownTypes, maxFutureMs) apply to every event taken (default: none). */
  readonly config?: Config;
  /** Error records kept in full per reason per second (settings.errorsPerSecond; default its default). */
  readonly errorsPerSecond?: number;
  /** The internal kind a Segment userId maps to (default user_id). */
  readonly segmentUserKind?: string;
  /** Clock of `receivedAt` (default Date.now). */
  readonly now?: () => number;
  /** Id of a Segment message without messageId (default a random UUID). */
  readonly newId?: () => string;
  /** How long /readyz waits for `readiness()` (default 2000 ms). */
  readonly readinessTimeoutMs?: number;
  /**
   * The URL browsers reach this server at (`XREF_PUBLIC_URL`, e.g. https://xref.example.com): where
   * the analytics.js settings document sends events. Default: the request's Host header and
   * X-Forwarded-Proto.
   */
  readonly publicUrl?: string;
}

export type XrefApp = FastifyInstance;

const COLLECTOR_ROUTES_TEXT = 'POST /v1/events, POST /v1/batch, POST /v1/{track,identify,page,screen,group,alias}, GET /v1/projects/<write key>/settings';
const HEALTH_ROUTES_TEXT = 'GET /livez, GET /readyz, GET /metrics';

/** The routes a 404 lists: those this app serves. */
function routesText(withQueries: boolean, withAdmin: boolean): string {
  return [COLLECTOR_ROUTES_TEXT, ...(withQueries ? [QUERY_ROUTES_TEXT] : []), ...(withAdmin ? [ADMIN_ROUTES_TEXT] : []), HEALTH_ROUTES_TEXT].join(', ');
}

/** Builds the collector. Throws an XrefError when the deps are not usable (no write keys, …). */
export function buildApp(deps: AppDeps): XrefApp {
  const { limits, metrics } = deps;
  if (deps.writeKeys !== INSECURE_NO_AUTH && deps.writeKeys.size === 0) {
    throw new XrefError('XREF_INVALID_CONFIG', 'the HTTP collector has no write keys: set XREF_WRITE_KEYS=key1,key2, or pass --insecure-no-auth to accept every request', {
      field: 'XREF_WRITE_KEYS',
    });
  }
  if (!Number.isSafeInteger(deps.publishDeadlineMs) || deps.publishDeadlineMs < 1) {
    throw new XrefError('XREF_INVALID_CONFIG', `publishDeadlineMs must be a positive integer, got ${deps.publishDeadlineMs}`, { field: 'publishDeadlineMs' });
  }
  const publicOrigin: PublicOrigin | undefined = parsePublicUrl(deps.publicUrl);
  const userKind = deps.segmentUserKind ?? DEFAULT_SEGMENT_USER_KIND;
  if (Object.values<string>(SEGMENT_KINDS).includes(userKind)) {
    throw new XrefError('XREF_INVALID_CONFIG', `the Segment user kind cannot be ${userKind}: that kind holds anonymous ids`, { field: 'XREF_SEGMENT_USER_KIND' });
  }

  const app = createServer({ logger: deps.logger, limits, metrics, routes: routesText(deps.queries !== undefined, deps.control !== undefined) });
  if (deps.writeKeys === INSECURE_NO_AUTH) app.log.warn('accepting events without a write key (--insecure-no-auth)');
  app.register(collectorRoutes, {
    publisher: deps.publisher,
    writeKeys: deps.writeKeys,
    limits,
    metrics,
    publishDeadlineMs: deps.publishDeadlineMs,
    segment: { userKind, limits, ...(deps.newId === undefined ? {} : { newId: deps.newId }) },
    now: deps.now ?? Date.now,
    publicOrigin,
    config: deps.config,
    errorsPerSecond: deps.errorsPerSecond,
  });
  if (deps.queries !== undefined) app.register(queryRoutes, { queries: deps.queries, readTokens: deps.readTokens, metrics });
  if (deps.control !== undefined) app.register(adminRoutes, { control: deps.control, adminTokens: deps.adminTokens, metrics });
  app.register(healthRoutes, {
    readiness: deps.readiness,
    readinessTimeoutMs: deps.readinessTimeoutMs ?? 2000,
    metrics,
    shuttingDown: () => isShuttingDown(app),
  });
  return app;
}
