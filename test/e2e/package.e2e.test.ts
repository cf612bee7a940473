import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupEvents } from '../../src/group.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '../..');
const fixture = join(repo, 'test/fixtures/pygrouper.ndjson');
const tsc = join(repo, 'node_modules/typescript/bin/tsc');

/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the tarball
 * installed into a fresh project, then used from plain Node 20 (no tsx) and type-checked by tsc.
 */
describe('the packed xref package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xref-pack-'));
  const project = join(dir, 'consumer');
  const node = (script: string) => run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });

  beforeAll(async () => {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: repo, maxBuffer: 64 << 20 });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    await run('mkdir', [project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // dependencies come from the cache `npm ci` filled; no install scripts are needed to import
    await run('npm', ['install', join(dir, filename), '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: project });
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('groups the pygrouper example from plain Node with `import { groupEvents } from "xref"`', async () => {
    const { stdout } = await node(`
      import { readFileSync } from 'node:fs';
      import { groupEvents } from 'xref';
      const events = readFileSync(${JSON.stringify(fixture)}, 'utf8').split('\\n').filter(Boolean).map((line) => JSON.parse(line));
      process.stdout.write(JSON.stringify(groupEvents(events).groups));
    `);
    const events = readFileSync(fixture, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as unknown);
    expect(JSON.parse(stdout)).toEqual(groupEvents(events).groups);
    expect(Object.keys(JSON.parse(stdout).db_id['123'])).toEqual(['db_id', 'cookie']);
  });

  it('serves the streaming parts as their own entry points, xref/nats and xref/http', async () => {
    const { stdout } = await node(`
      const nats = await import('xref/nats');
      const http = await import('xref/http');
      process.stdout.write(JSON.stringify([typeof nats.EngineService, typeof nats.JetStreamSink, typeof http.buildApp]));
    `);
    expect(JSON.parse(stdout)).toEqual(['function', 'function', 'function']);
  });

  it('gives types a consumer can check with tsc (wrong calls fail)', async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['use.ts'] }),
    );
    writeFileSync(
      join(project, 'use.ts'),
      [
        "import { groupEvents, type GroupsDocument, type XrefEvent } from 'xref';",
        "const events: XrefEvent[] = [{ id: 'e0', name: 'signup', ids: { db_id: '1' }, data: {} }];",
        'const groups: GroupsDocument = groupEvents(events).groups;',
        'const audits: number = groupEvents(events).audit.length;',
        '// @ts-expect-error the config is checked: relink takes "latest" or "first" per kind',
        "groupEvents(events, { relink: { cookie: 'sometimes' } });",
        'export { groups, audits };',
      ].join('\n'),
    );
    await expect(run(process.execPath, [tsc, '-p', project], { cwd: project })).resolves.toBeDefined();
  });

  it('serves the tracker as xref/tracker, and its NATS backend as xref/tracker/nats', async () => {
    const { stdout } = await node(`
      const tracker = await import('xref/tracker');
      const nats = await import('xref/tracker/nats');
      process.stdout.write(JSON.stringify([typeof tracker.createTracker, typeof tracker.httpBackend, typeof tracker.trackerPlugin, typeof nats.natsBackend]));
    `);
    expect(JSON.parse(stdout)).toEqual(['function', 'function', 'function', 'function']);
  });

  it('imports the offline library without NATS or fastify installed at all', async () => {
    for (const name of ['fastify', '@nats-io', 'prom-client']) rmSync(join(project, 'node_modules', name), { recursive: true, force: true });
    const { stdout } = await node(`import { groupEvents } from 'xref'; process.stdout.write(String(Object.keys(groupEvents([{ id: 'a', ids: { user_id: 'u' } }]).groups)));`);
    expect(stdout).toBe('user_id');
  });

  it('runs the tracker from plain Node without NATS or fastify installed at all', async () => {
    for (const name of ['fastify', '@nats-io']) rmSync(join(project, 'node_modules', name), { recursive: true, force: true });
    const { stdout } = await node(`
      import { createTracker, memoryBackend } from 'xref/tracker';
      const memory = memoryBackend();
      const tracker = createTracker({ backends: { memory }, ids: { 'context.user_id': 'user_id' } });
      await tracker.context('request', { user_id: 'u1' }, async () => tracker.emit('signup', { plan: 'pro' }));
      const report = await tracker.close();
      process.stdout.write(JSON.stringify({ event: memory.events[0], report }));
    `);
    const { event, report } = JSON.parse(stdout) as { event: { name: string; ids: object; data: object }; report: { total: object } };
    expect(event).toMatchObject({ name: 'signup', ids: { user_id: 'u1' }, data: { plan: 'pro' } });
    expect(report.total).toEqual({ sent: 1, failed: 0, dropped: 0, pending: 0 });
  });
});
