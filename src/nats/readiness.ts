import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { XrefError } from '../domain/errors.ts';
import type { Readiness } from '../http/health-routes.ts';
import { STREAMS } from './subjects.ts';

export interface NatsReadinessOptions {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** Streams that must exist (default XREF_IN, where the collector publishes). */
  readonly streams?: readonly string[];
  /** The engine of this process (omitted: none): its role, lag and waits. */
  readonly engine?: {
    readonly role: 'standby' | 'active' | 'stopped';
    readonly engine?: { lag(): Promise<number>; readonly waits: { readonly current: readonly string[] } } | undefined;
  };
  /** Largest lag still "caught up" (default 10000). */
  readonly maxLag?: number;
  /** Per check (default 1500 ms). */
  readonly timeoutMs?: number;
}

async function within<T>(ms: number, what: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([what, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new XrefError('XREF_NATS_UNAVAILABLE', `no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The `readiness` of `buildApp` for a process on NATS: connected (not closed, draining or
 * between a disconnect and a reconnect), the streams bound, and, when there is an engine, its lag
 * at most `maxLag`. Each check answers true or why not.
 */
export function natsReadiness(options: NatsReadinessOptions): () => Promise<Readiness> {
  const { nc, jsm } = options;
  const streams = options.streams ?? [STREAMS.in];
  const maxLag = options.maxLag ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 1500;
  let disconnected = false;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') disconnected = true;
      else if (status.type === 'reconnect') disconnected = false;
    }
  })().catch(() => undefined);

  return async () => {
    const checks: Record<string, boolean | string> = {};
    if (nc.isClosed()) checks.nats = 'the connection is closed';
    else if (nc.isDraining()) checks.nats = 'the connection is draining';
    else if (disconnected) checks.nats = 'disconnected, reconnecting';
    else checks.nats = true;
    const streamCheck = async (name: string) => {
      if (checks.nats !== true) return 'NATS is not connected';
      try {
        await within(timeoutMs, jsm.streams.info(name));
        return true;
      } catch (error) {
        return (error as Error).message;
      }
    };
    const results = await Promise.all(streams.map(streamCheck));
    streams.forEach((name, i) => (checks[`stream ${name}`] = results[i]!));
    const runner = options.engine;
    const engine = runner?.engine;
    const waiting = engine?.waits.current ?? [];
    if (runner === undefined) {
      // no engine in this process
    } else if (runner.role !== 'active' || engine === undefined) {
      // a standby (or an engine starting up): the collector alone decides
    } else if (waiting.length > 0) checks.engine = `waiting for NATS to answer (${waiting.join(', ')}); it retries by itself`;
    else {
      try {
        const lag = await within(timeoutMs, engine.lag());
        checks.engine = lag <= maxLag ? true : `${lag} inputs behind (more than ${maxLag})`;
      } catch (error) {
        checks.engine = `lag unknown: ${(error as Error).message}`;
      }
    }
    return { ready: Object.values(checks).every((ok) => ok === true), checks, ...(runner === undefined ? {} : { engine: runner.role === 'active' ? 'active' : 'standby' }) };
  };
}
