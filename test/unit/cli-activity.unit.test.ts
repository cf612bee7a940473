import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { activityCommand } from '../../src/cli/activity-command.ts';
import { groupCommand } from '../../src/cli/group-command.ts';
import { capture } from '../helpers/cli.ts';

const run = promisify(execFile);
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;
const dir = () => mkdtempSync(join(tmpdir(), 'xref-activity-'));

const CONFIG = {
  activity: {
    buckets: { site1: { field: 'data.site', equals: 'site1' }, site2: { field: 'data.site', equals: 'site2' }, anon: { linked: false } },
    aggregates: { total: ['site1', 'site2'] },
  },
};

function write(lines: unknown[], config: object = CONFIG) {
  const at = dir();
  const file = join(at, 'log.ndjson');
  writeFileSync(file, lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n'));
  const configFile = join(at, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  return { file, config: configFile, dir: at };
}

const ev = (id: string, timestamp: string, ids: Record<string, string>, site: string) => ({ id, timestamp, ids, data: { site } });

describe('xref activity', () => {
  it('prints the API document and plots the example log to SVG through the real binary', async () => {
    const svg = join(dir(), 'chart.svg');
    const { stdout, stderr } = await run(process.execPath, [
      'bin/xref.js', 'activity', fixture('activity-example.ndjson'), '--period', 'day', '--config', fixture('activity-example.config.json'),
      '--bucket', 'site1', '--bucket', 'site2', '--bucket', 'total', '--json', '--plot', svg,
    ]);
    const doc = JSON.parse(stdout);
    expect(Object.keys(doc)).toEqual(['period', 'timeZone', 'series']);
    expect([doc.period, doc.timeZone]).toEqual(['day', 'Europe/Paris']);
    expect(doc.series.map((p: { start: string }) => p.start)).toEqual(Array.from({ length: 14 }, (_, i) => `2024-03-${18 + i}`));
    for (const point of doc.series) {
      expect(Object.keys(point.counts)).toEqual(['site1', 'site2', 'total']);
      // the union counts each person once: at most the sum, at least the larger
      expect(point.counts.total).toBeLessThanOrEqual(point.counts.site1 + point.counts.site2);
      expect(point.counts.total).toBeGreaterThanOrEqual(Math.max(point.counts.site1, point.counts.site2));
    }
    // a late login restated a closed day: fewer people than were reported then
    const restated = doc.series.filter((p: { restated?: object }) => p.restated !== undefined);
    expect(restated.length).toBeGreaterThan(0);
    expect(restated.every((p: { counts: { total: number }; restated: { total: number } }) => p.restated.total <= p.counts.total)).toBe(true);
    expect(stderr).toBe(`wrote ${svg}\n`);

    const chart = readFileSync(svg, 'utf8');
    expect(chart.startsWith('<svg')).toBe(true);
    const texts = [...chart.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(texts).toEqual(expect.arrayContaining(['day starting (Europe/Paris)', 'active people', 'site1', 'site2', 'total', 'as reported', 'as known now', 'Mar 18', 'Mar 31', 'Active people per day (Europe/Paris)']));
  });

  it('refuses an unknown bucket through the binary with exit 2 and a message naming it', async () => {
    const failure = await run(process.execPath, ['bin/xref.js', 'activity', fixture('activity-example.ndjson'), '--bucket', 'site9']).catch((error: { code: number; stderr: string }) => error);
    expect((failure as { code: number }).code).toBe(2);
    expect((failure as { stderr: string }).stderr).toBe('xref: bucket "site9" is not a configured bucket (known: all)\n');
  });

  it('prints a table with a bar per row, marks open periods and restated counts, and a summary', async () => {
    const log = write([
      ev('1', '2024-01-01T09:00:00Z', { db_id: 'u1' }, 'site1'),
      ev('2', '2024-01-01T10:00:00Z', { cookie: 'laptop' }, 'site1'),
      ev('3', '2024-01-02T10:00:00Z', { db_id: 'u2' }, 'site2'),
      ev('4', '2024-01-02T11:00:00Z', { db_id: 'u3' }, 'site2'),
      ev('5', '2024-01-04T00:00:00Z', { db_id: 'u3' }, 'site3'), // 1 January closes
      ev('6', '2024-01-05T10:00:00Z', { cookie: 'laptop', db_id: 'u1' }, 'site2'),
    ]);
    const { io, out } = capture();
    const code = await activityCommand(log.file, { period: 'day', config: log.config, bucket: ['site1', 'site2', 'total'] }, io);
    expect(code).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[1]).toMatch(/^│ day \(UTC\)\s+│ site1\s+│ site2\s+│ total\s+│ unattributed │$/);
    // 1 January closed (on 4 January) with 2 people on site1, u1 and the anonymous laptop; the laptop's login says they were 1
    expect(lines.find((line) => line.includes('2024-01-01'))).toMatch(/^│ 2024-01-01\s+│ 2 → 1 █{24}\s+│ 0\s+│ 2 → 1 █{24}\s+│ 0\s+│$/);
    expect(lines.find((line) => line.includes('2024-01-02'))).toMatch(/^│ 2024-01-02\s+│\s+0\s+│ 2 █{24}\s+│\s+2 █{24}\s+│ 0\s+│$/);
    expect(lines.find((line) => line.includes('2024-01-05'))).toMatch(/^│ 2024-01-05 \*\s+│\s+0\s+│ 1 █{12}\s+│\s+1 █{12}\s+│ 0\s+│$/);
    expect(lines.slice(-4)).toEqual([
      '* open: its counts may still change',
      'a → b: a as frozen when the period closed, b as known now',
      '6 events counted (0 rejected, 0 duplicate, 0 untimed, 0 unattributed, 0 still anonymous)',
      '',
    ]);
  });

  it('takes --from, --to, --tz and --period week, and reports bad lines with exit 1', async () => {
    const log = write([ev('1', '2024-01-07T23:30:00Z', { db_id: 'u1' }, 'site1'), 'not json', ev('2', '2024-01-08T00:30:00Z', { db_id: 'u2' }, 'site1'), { id: 'x' }]);
    const { io, out } = capture();
    expect(await activityCommand(log.file, { period: 'week', config: log.config, json: true, from: '2024-01-01', to: '2024-01-15' }, io)).toBe(1);
    expect(JSON.parse(out.stdout)).toEqual({
      period: 'week',
      timeZone: 'UTC',
      series: [
        { start: '2024-01-01', counts: { all: 1 }, unattributed: 0 },
        { start: '2024-01-08', counts: { all: 1 }, unattributed: 0 },
      ],
    });
    expect(out.stderr).toMatch(/^line 2: invalid JSON .*\nline 4: ids is required/);
    // in Paris, both are in the week of 8 January (Sunday 23:30 UTC is Monday 00:30 there)
    const paris = capture();
    await activityCommand(log.file, { period: 'week', config: log.config, json: true, tz: 'Europe/Paris' }, paris.io);
    expect(JSON.parse(paris.out.stdout)).toEqual({ period: 'week', timeZone: 'Europe/Paris', series: [{ start: '2024-01-08', counts: { all: 2 }, unattributed: 0 }] });
  });

  it('refuses a bad period, bucket, zone or range before reading the file, naming it', async () => {
    const missing = join(dir(), 'missing.ndjson');
    const { io } = capture();
    await expect(activityCommand(missing, { period: 'year' }, io)).rejects.toMatchObject({ code: 'XREF_INVALID_ARGUMENT', field: 'period' });
    await expect(activityCommand(missing, { bucket: ['nope'] }, io)).rejects.toMatchObject({ field: 'bucket', message: 'bucket "nope" is not a configured bucket (known: all)' });
    await expect(activityCommand(missing, { tz: 'Moon/Base' }, io)).rejects.toMatchObject({ field: 'tz' });
    await expect(activityCommand(missing, { from: '2020-01-01', to: '2024-01-01' }, io)).rejects.toMatchObject({ field: 'to', message: expect.stringContaining('over the limit of 1000 periods') });
    const bad = write([], { activity: { timeZone: 'Moon/Base' } });
    await expect(activityCommand(bad.file, { config: bad.config }, io)).rejects.toMatchObject({ code: 'XREF_INVALID_CONFIG', field: 'activity.timeZone' });
  });

  it('leaves xref group working with a config file that has an activity key', async () => {
    const log = write([ev('1', '2024-01-01T09:00:00Z', { db_id: 'u1' }, 'site1')]);
    const { io, out } = capture();
    expect(await groupCommand(log.file, { config: log.config }, io)).toBe(0);
    expect(Object.keys(JSON.parse(out.stdout).db_id)).toEqual(['u1']);
  });
});
