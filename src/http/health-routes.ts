/**
 * The open routes a supervisor and Prometheus read: GET /livez (the process answers), GET /readyz
 * (it can take traffic: `readiness()` says so and it is not shutting down), GET /metrics.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { XrefError } from '../domain/errors.ts';
import { errorBody } from './errors.ts';
import type { XrefMetrics } from './metrics.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, boolean | string>;
  /** This process's engine: `active` (it holds the engine lease) or `standby`; absent without one. */
  readonly engine?: 'active' | 'standby';
}

export interface HealthRoutesOptions {
  /** NATS connected, streams bound, engine caught up (see `natsReadiness`). */
  readonly readiness: () => Promise<Readiness>;
  /** How long /readyz waits for `readiness()`. */
  readonly readinessTimeoutMs: number;
  /** Served on /metrics. */
  readonly metrics: XrefMetrics;
  /** True once the server is shutting down: /readyz then answers 503 without asking `readiness()`. */
  readonly shuttingDown: () => boolean;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, options) => {
  const { metrics } = options;

  app.get('/livez', async () => ({ live: true }));

  app.get('/readyz', async (_request, reply) => {
    if (options.shuttingDown()) {
      return reply.code(503).send({ ...errorBody(new XrefError('XREF_NOT_READY', 'not ready: shutting down')), ready: false, checks: { shuttingDown: true } });
    }
    const result = await probe(options.readiness, options.readinessTimeoutMs);
    const engine = result.engine === undefined ? {} : { engine: result.engine };
    if (result.ready) return { ready: true, checks: result.checks, ...engine };
    const failing = Object.entries(result.checks)
      .filter(([, ok]) => ok !== true)
      .map(([name, why]) => (typeof why === 'string' ? `${name}: ${why}` : name));
    return reply
      .code(503)
      .send({ ...errorBody(new XrefError('XREF_NOT_READY', `not ready: ${failing.join('; ') || 'the readiness check said so'}`)), ready: false, checks: result.checks, ...engine });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.header('content-type', metrics.registry.contentType).send(text);
  });
};

/** `readiness()`, or why not ready when it throws or does not answer within `timeoutMs`. */
async function probe(readiness: () => Promise<Readiness>, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      readiness(),
      new Promise<Readiness>((resolve) => {
        timer = setTimeout(() => resolve({ ready: false, checks: { readiness: `no answer within ${timeoutMs} ms` } }), timeoutMs);
      }),
    ]);
  } catch (error) {
    return { ready: false, checks: { readiness: `the check failed: ${(error as Error).message}` } };
  } finally {
    clearTimeout(timer);
  }
}
