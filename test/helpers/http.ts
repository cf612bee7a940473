import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, expect } from 'vitest';
import { defaultLimits } from '../../src/domain/limits.ts';
import { type AppDeps, type Readiness, type XrefApp, buildApp } from '../../src/http/app.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { ScriptedSink } from './scripted-sink.ts';

export const WRITE_KEY = 'wk_test_7f3a9c';
export const OTHER_KEY = 'wk_other_12b4';

export function basic(user: string, password = ''): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export const AUTH = { authorization: basic(WRITE_KEY) } as const;

/** An app on a ScriptedSink (storing until told otherwise), with its log lines captured (level trace: everything). */
export function testApp(overrides: Partial<AppDeps> = {}) {
  const sink = new ScriptedSink();
  const metrics = createMetrics({ processMetrics: false });
  const lines: string[] = [];
  const logger = pino(
    { level: 'trace' },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  let readiness: Readiness = { ready: true, checks: { nats: true } };
  const app = buildApp({
    publisher: sink,
    writeKeys: new Set([WRITE_KEY, OTHER_KEY]),
    limits: defaultLimits(),
    logger,
    readiness: async () => readiness,
    metrics,
    publishDeadlineMs: 150,
    now: () => Date.parse('2024-05-01T12:00:00.000Z'),
    ...overrides,
  });
  return {
    app,
    sink,
    metrics,
    lines,
    setReadiness(next: Readiness) {
      readiness = next;
    },
  };
}

/** `testApp` for a suite (call it at its top level): every app it makes is closed after each test. */
export function useTestApps(): typeof testApp {
  const apps: XrefApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  return (...args) => {
    const made = testApp(...args);
    apps.push(made.app);
    return made;
  };
}

/** The JSON body of an error answer: `error` (a message), `code`, maybe `field`. */
export function expectError(response: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, code?: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(String(response.headers['content-type'])).toMatch(/application\/json/);
  const body = JSON.parse(response.body) as { error: string; code: string; field?: string; [k: string]: unknown };
  expect(typeof body.error).toBe('string');
  expect(body.error.length).toBeGreaterThan(5);
  expect(body.code).toMatch(/^XREF_/);
  if (code !== undefined) expect(body.code).toBe(code);
  return body;
}
