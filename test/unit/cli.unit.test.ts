import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { groupCommand } from '../../src/cli/group-command.ts';

const run = promisify(execFile);
const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;

async function group(file: string, options = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk) => (out += chunk));
  stderr.on('data', (chunk) => (err += chunk));
  const code = await groupCommand(file, options, { stdout, stderr });
  return { code, out, err };
}

describe('xref group', () => {
  it('prints the pygrouper document through the real binary', async () => {
    const { stdout } = await run(process.execPath, ['bin/xref.js', 'group', fixture('pygrouper.ndjson')]);
    const doc = JSON.parse(stdout);
    expect(Object.keys(doc.db_id['123'])).toEqual(['db_id', 'cookie']);
    expect(doc.db_id['123'].cookie.nice_page_visitor.map((e: { id: string }) => e.id)).toEqual(['e1', 'e2']);
    expect(doc.db_id['123'].db_id['123'].map((e: { id: string }) => e.id)).toEqual(['e0']);
  });

  it('reports each bad line on stderr, groups the rest and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-cli-'));
    const file = join(dir, 'mixed.ndjson');
    writeFileSync(file, ['{"id":"a","ids":{"db_id":1}}', 'not json', '', '{"id":"b"}', '{"id":"c","ids":{"db_id":1}}'].join('\n'));
    const { code, out, err } = await group(file);
    expect(code).toBe(1);
    expect(err).toMatch(/^line 2: invalid JSON/m);
    expect(err).toMatch(/^line 4: ids is required/m);
    expect(JSON.parse(out).db_id['1'].db_id['1'].map((e: { id: string }) => e.id)).toEqual(['a', 'c']);
  });

  it('takes a config file and --internal, and --report prints the whole report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-cli-'));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ buffer: { maxEvents: 1 } }));
    const file = join(dir, 'log.ndjson');
    writeFileSync(file, ['{"id":"a","ids":{"cookie":"c"}}', '{"id":"b","ids":{"cookie":"c"}}', '{"id":"l","ids":{"account":"7","cookie":"c"}}'].join('\n'));
    const { code, out } = await group(file, { config, internal: ['account'], report: true });
    expect(code).toBe(0);
    const report = JSON.parse(out);
    expect(Object.keys(report)).toEqual(['groups', 'unmatched', 'audit']);
    expect(report.groups.account['7'].cookie.c.map((e: { id: string }) => e.id)).toEqual(['b']);
    expect(report.unmatched.map((u: { reason: string }) => u.reason)).toEqual(['overflow']);
  });

  it('warns on stderr when no event carried the internal kind named, listing the kinds the file carries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-cli-'));
    const file = join(dir, 'anon.ndjson');
    writeFileSync(file, ['{"id":"a","ids":{"anonymous_id":"a1"}}', '{"id":"b","ids":{"anonymous_id":"a1","cookie":"c"}}', '{"id":"c","ids":{"db_id":"1"}}'].join('\n'));
    const { code, out, err } = await group(file, { internal: ['account_id'] });
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({});
    expect(err).toBe(
      'warning: no event carried the internal kind account_id (--internal), so no event is grouped under a user.\n' +
        '  The events carry: anonymous_id (2 events), cookie (1 event), db_id (1 event). If one of these is your own user id, name it: --internal <kind>\n',
    );

    // several kinds, from a config file: named as such
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ internal: ['account_id', 'member_id'] }));
    const fromConfig = await group(file, { config, report: true });
    expect(JSON.parse(fromConfig.out).groups).toEqual({});
    expect(fromConfig.err).toContain(`warning: no event carried any of the internal kinds account_id, member_id ("internal" in ${config}), `);

    // one event carrying an internal kind is enough: no warning
    const grouped = await group(file, { internal: ['db_id'] });
    expect(Object.keys(JSON.parse(grouped.out))).toEqual(['db_id']);
    expect(grouped.err).toBe('');
  });

  it('warns through the real binary with the default internal kinds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-cli-'));
    const file = join(dir, 'cookies.ndjson');
    writeFileSync(file, '{"id":"a","ids":{"cookie":"c"}}\n');
    // as a user types it: the option before the file
    const { stdout, stderr } = await run(process.execPath, ['bin/xref.js', 'group', '--internal', 'account_id', file]);
    expect(JSON.parse(stdout)).toEqual({});
    expect(stderr).toMatch(/^warning: no event carried the internal kind account_id \(--internal\).*\n {2}The events carry: cookie \(1 event\)\./);
    const byDefault = await run(process.execPath, ['bin/xref.js', 'group', file]);
    expect(byDefault.stderr).toMatch(/^warning: no event carried any of the internal kinds db_id, user_id \(the default\)/);
  });

  it('exits 2 with a clear message on a bad config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-cli-'));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ relink: { cookie: 'sometimes' } }));
    const result = await run(process.execPath, ['bin/xref.js', 'group', fixture('pygrouper.ndjson'), '--config', config]).catch((e) => e);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/config relink.cookie must be "latest" or "first", got "sometimes"/);
  });

  it('reads standard input with -', async () => {
    const child = execFile(process.execPath, ['bin/xref.js', 'group', '-']);
    let out = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    child.stdin!.end('{"id":"a","ids":{"user_id":"u"}}\n');
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ user_id: { u: { user_id: { u: [{ id: 'a', ids: { user_id: 'u' } }] } } } });
  });
});
