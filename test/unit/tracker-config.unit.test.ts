/**
 * trackerFromConfig: a whole tree from plain `{ engine, options }` nodes (routing with its
 * processors, memory, logger, http, nats), config errors that name the path of the bad field, and
 * the entry loading no NATS (nor fastify) unless a nats node asks for it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isXrefError } from '../../src/domain/errors.ts';
import { HttpBackend } from '../../src/tracker/http-backend.ts';
import { NatsBackend } from '../../src/tracker/nats-backend.ts';
import { type MemoryBackend, type TrackerConfig, trackerFromConfig } from '../../src/tracker/index.ts';

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'trace' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { logger, lines };
}

/** The XREF_INVALID_CONFIG error trackerFromConfig rejects with: [field, message]. */
async function configError(config: unknown): Promise<[string | undefined, string]> {
  try {
    const tracker = await trackerFromConfig(config as TrackerConfig);
    await tracker.close({ timeoutMs: 0 });
  } catch (error) {
    if (isXrefError(error, 'XREF_INVALID_CONFIG')) return [error.field, error.message];
    throw error;
  }
  throw new Error('the config was taken');
}

describe('trackerFromConfig', () => {
  it('builds the whole tree: top-level processors, routing branches with their own processors, memory and logger backends', async () => {
    const { logger, lines } = captureLogger();
    const tracker = await trackerFromConfig(
      {
        source: 'web',
        ids: { 'context.user_id': 'db_id' },
        processors: [{ engine: 'regex-filter', options: { type: 'blocklist', patterns: ['debug\\..*'] } }],
        backends: {
          all: { engine: 'memory' },
          caliper: {
            engine: 'routing',
            options: {
              processors: [
                { engine: 'name-allowlist', options: { names: ['login', 'pay'] } },
                { engine: 'redact', options: { paths: ['data.card', 'context.ip'] } },
              ],
              backends: { store: { engine: 'memory', options: {} }, log: { engine: 'logger', options: { level: 'debug', maxEventSize: 4096 } } },
            },
          },
        },
      },
      { logger },
    );
    expect(tracker.source).toBe('web');
    tracker.context('request', { user_id: 7, ip: '1.2.3.4' }, () => {
      tracker.emit('debug.timing');
      tracker.emit('pageview');
      tracker.emit('pay', { card: '4111', amount: 3 });
    });
    const all = tracker.backend('all') as MemoryBackend;
    const store = tracker.backend('caliper.store') as MemoryBackend;
    expect(all.events.map((e) => e.name)).toEqual(['pageview', 'pay']);
    expect(all.events[1]).toMatchObject({ ids: { db_id: '7' }, data: { card: '4111' }, context: { ip: '1.2.3.4' } });
    expect(store.events).toHaveLength(1);
    expect(store.events[0]).toMatchObject({ name: 'pay', ids: { db_id: '7' }, data: { amount: 3 }, context: { user_id: 7 } });
    expect(store.events[0]?.data).not.toHaveProperty('card');
    expect(store.events[0]?.context).not.toHaveProperty('ip');
    expect(lines.filter((line) => line.backend === 'caliper.log').map((line) => [line.level, line.msg])).toEqual([[20, 'pay']]);
    expect(Object.keys(tracker.stats().backends)).toEqual(['all', 'caliper.store', 'caliper.log']);
  });

  it('builds http and nats backends, the nats subject defaulting to xref.in.<source>', async () => {
    const tracker = await trackerFromConfig({
      source: 'shop',
      backends: {
        collector: { engine: 'http', options: { url: 'http://127.0.0.1:9', writeKey: 'wk_1', flushAt: 10, overflow: 'drop-newest' } },
        log: { engine: 'nats', options: { servers: 'nats://127.0.0.1:9' } },
        other: { engine: 'nats', options: { servers: ['nats://127.0.0.1:9'], subject: 'xref.in.other' } },
      },
    });
    expect(tracker.backend('collector')).toBeInstanceOf(HttpBackend);
    expect((tracker.backend('log') as NatsBackend).subject).toBe('xref.in.shop');
    expect((tracker.backend('other') as NatsBackend).subject).toBe('xref.in.other');
    const report = await tracker.close({ timeoutMs: 0 });
    expect(report.total).toEqual({ sent: 0, failed: 0, dropped: 0, pending: 0 });
  });

  it('names the path of a bad engine, however deep', async () => {
    expect(
      await configError({ backends: { caliper: { engine: 'routing', options: { processors: [{ engine: 'regexp' }], backends: {} } } } }),
    ).toEqual(['backends.caliper.options.processors[0].engine', 'config backends.caliper.options.processors[0].engine must be one of regex-filter, name-allowlist, redact, got "regexp"']);
    expect(await configError({ backends: { a: { engine: 'routing', options: { backends: { b: { engine: 'redact' } } } } } })).toEqual([
      'backends.a.options.backends.b.engine',
      'config backends.a.options.backends.b.engine must be one of routing, http, nats, logger, memory, got "redact"',
    ]);
  });

  it('names the path of a bad option, an unknown one included', async () => {
    const routed = (processor: unknown) => ({ backends: { r: { engine: 'routing', options: { processors: [processor], backends: {} } } } });
    expect((await configError(routed({ engine: 'regex-filter', options: { type: 'allowlist', patterns: ['ok', '[bad'] } })))[0]).toBe('backends.r.options.processors[0].options.patterns[1]');
    expect((await configError(routed({ engine: 'regex-filter', options: { type: 'deny', patterns: [] } })))[0]).toBe('backends.r.options.processors[0].options.type');
    expect((await configError(routed({ engine: 'redact', options: { paths: ['data.'] } })))[0]).toBe('backends.r.options.processors[0].options.paths[0]');
    expect((await configError(routed({ engine: 'name-allowlist', options: { names: 'login' } })))[0]).toBe('backends.r.options.processors[0].options.names');
    expect(await configError({ backends: { log: { engine: 'logger', options: { levle: 'info' } } } })).toEqual([
      'backends.log.options.levle',
      'config backends.log.options.levle is not an option here (known: level, maxEventSize), got "info"',
    ]);
    expect((await configError({ backends: { log: { engine: 'logger', options: { level: 'loud' } } } }))[0]).toBe('backends.log.options.level');
    expect((await configError({ backends: { m: { engine: 'memory', options: { max: 1 } } } }))[0]).toBe('backends.m.options.max');
    expect((await configError({ backends: { m: { engine: 'memory', option: {} } } }))[0]).toBe('backends.m.option');
  });

  it('names the path of a bad network option, also those the backend itself checks', async () => {
    expect((await configError({ backends: { c: { engine: 'http', options: { url: 'localhost:8080', writeKey: 'k' } } } }))[0]).toBe('backends.c.options.url');
    expect((await configError({ backends: { c: { engine: 'http', options: { url: 'http://x', writeKey: '' } } } }))[0]).toBe('backends.c.options.writeKey');
    expect((await configError({ backends: { c: { engine: 'http', options: { url: 'http://x', writeKey: 'k', flushAt: -1 } } } }))[0]).toBe('backends.c.options.flushAt');
    expect((await configError({ backends: { c: { engine: 'http', options: { url: 'http://x', writeKey: 'k', overflow: 'drop-all' } } } }))[0]).toBe('backends.c.options.overflow');
    expect((await configError({ backends: { n: { engine: 'nats', options: {} } } }))).toEqual([
      'backends.n.options.servers',
      'config backends.n.options.servers is required when no NATS connection (nc) is given with the config, got undefined',
    ]);
    // checked by the NATS backend itself, reported at the config's path
    expect(await configError({ backends: { n: { engine: 'nats', options: { servers: 'nats://127.0.0.1:9', subject: 'events.web' } } } })).toEqual([
      'backends.n.options.subject',
      expect.stringMatching(/^config backends\.n\.options\.subject must be one of xref's input subjects/),
    ]);
  });

  it('takes the backends own checks, at the config path: what the queue refuses, the config refuses', async () => {
    const [field, message] = await configError({ backends: { c: { engine: 'http', options: { url: 'http://x', writeKey: 'k', minRetryDelayMs: 0 } } } });
    expect(field).toBe('backends.c.options.minRetryDelayMs');
    expect(message).toMatch(/^config backends\.c\.options\.minRetryDelayMs must be an integer >= 1, got 0$/);
    expect(await configError({ backends: { log: { engine: 'logger', options: { maxEventSize: 1.5 } } } })).toEqual([
      'backends.log.options.maxEventSize',
      'config backends.log.options.maxEventSize must be a positive integer (bytes), got 1.5',
    ]);
  });

  it('refuses a backend name that looks like an integer (it would not keep its order), naming it', async () => {
    expect(await configError({ backends: { b: { engine: 'memory' }, 2: { engine: 'memory' } } })).toEqual([
      'backends.2',
      expect.stringMatching(/^config backends\.2 must not be an integer \(JavaScript lists integer keys first/),
    ]);
  });

  it('names the path of a bad top-level field', async () => {
    expect((await configError({}))[0]).toBe('backends');
    expect((await configError({ backends: {}, sources: 'x' }))[0]).toBe('tracker config.sources');
    expect((await configError({ backends: {}, processors: {} }))[0]).toBe('processors');
    expect((await configError({ backends: {}, ids: { 'user_id': 'db_id' } }))[0]).toBe('ids.user_id');
    expect((await configError({ backends: { 'a.b': { engine: 'memory' } } }))[0]).toBe('backends.a.b');
    expect((await configError({ backends: { a: 'memory' } }))[0]).toBe('backends.a');
  });
});

describe('the tracker entry', () => {
  it('loads neither fastify nor NATS; a config loads the NATS backend only when it has a nats node', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-tracker-load-'));
    try {
      // a resolve hook that tells every fastify / NATS module the process asks for
      writeFileSync(
        join(dir, 'hooks.mjs'),
        "export async function resolve(specifier, context, next) { if (/@nats-io|fastify|nats-backend/.test(specifier)) process.stdout.write('loaded ' + specifier + '\\n'); return next(specifier, context); }",
      );
      writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});`);
      const entry = pathToFileURL(join(import.meta.dirname, '../../src/tracker/index.ts')).href;
      writeFileSync(
        join(dir, 'main.mjs'),
        `const t = await import(${JSON.stringify(entry)});
const memory = await t.trackerFromConfig({ backends: { m: { engine: 'memory' } } });
memory.emit('x');
process.stdout.write('built memory\\n');
if (process.argv[2] === 'nats') await (await t.trackerFromConfig({ backends: { n: { engine: 'nats', options: { servers: 'nats://127.0.0.1:9' } } } })).close({ timeoutMs: 0 });`,
      );
      const run = (...args: string[]) =>
        execFileSync(process.execPath, ['--import', join(dir, 'register.mjs'), '--import', 'tsx', join(dir, 'main.mjs'), ...args], { cwd: join(import.meta.dirname, '../..'), encoding: 'utf8' });
      expect(run()).toBe('built memory\n');
      expect(run('nats')).toMatch(/^built memory\nloaded \.\/nats-backend\.ts\nloaded @nats-io\/transport-node\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
