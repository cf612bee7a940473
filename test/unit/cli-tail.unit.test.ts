import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { idleNotice, tailCommand } from '../../src/cli/tail-command.ts';
import { XrefError } from '../../src/domain/errors.ts';
import { logger } from '../../src/log.ts';
import { assertNatsHostResolves, connectNats } from '../../src/nats/connection.ts';
import { capture } from '../helpers/cli.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'xref-cli-tail-'));
/** Nothing listens on port 1: a test that got as far as connecting would fail, not wait. */
const nowhere = { natsUrl: 'nats://127.0.0.1:1', dataDir: join(dir, 'data') };
const UNRESOLVABLE = 'nats://no-such-host.invalid:4222'; // .invalid never resolves (RFC 6761)

/** Runs the real binary; resolves with its exit code and output whether it fails or not. */
async function xref(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, ['bin/xref.js', ...args], { env: { ...process.env, ...env }, timeout: 20_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe('xref tail with a kind that is not internal', () => {
  it('refuses a third-party kind before connecting, naming the internal kinds and what to tail instead', async () => {
    const { io, out } = capture();
    const attempt = tailCommand('anonymous_id', 'a1', {}, io, nowhere);
    await expect(attempt).rejects.toBeInstanceOf(XrefError);
    const error = (await attempt.catch((e: XrefError) => e)) as XrefError;
    expect(error.code).toBe('XREF_INVALID_ARGUMENT');
    expect(error.message).toMatch(/^anonymous_id is a third-party kind: events are grouped under internal kinds only \(db_id, user_id\)/);
    expect(error.message).toContain('nothing is ever published for anonymous_id "a1"');
    expect(error.message).toContain('xref tail user_id <id>');
    expect(error.message).toContain('xref tail db_id <id>');
    expect(out.stdout + out.stderr).toBe('');
  });

  it('reads the internal kinds from the config (XREF_CONFIG)', async () => {
    const configFile = join(dir, 'account.json');
    writeFileSync(configFile, JSON.stringify({ internal: ['account_id'] }));
    const { io } = capture();
    const attempt = tailCommand('user_id', 'u1', {}, io, { ...nowhere, configFile });
    await expect(attempt).rejects.toThrow(/^user_id is a third-party kind: events are grouped under internal kinds only \(account_id\)/);
    await expect(attempt).rejects.toThrow('xref tail account_id <id>');
  });

  it('exits 2 at once through the real binary, the explanation on stderr', async () => {
    const result = await xref(['tail', 'anonymous_id', 'a1'], { NATS_URL: nowhere.natsUrl });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^xref: anonymous_id is a third-party kind: events are grouped under internal kinds only \(db_id, user_id\)/);
    expect(result.stderr).toContain('e.g.: xref tail db_id <id>  or  xref tail user_id <id>');
  });
});

describe('xref tail with nothing to show', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives its notice once, after the idle time, and never once something was seen', () => {
    vi.useFakeTimers();
    const quiet = vi.fn();
    const q = idleNotice(3000, quiet);
    vi.advanceTimersByTime(2999);
    expect(quiet).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(quiet).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60_000);
    q.seen();
    vi.advanceTimersByTime(60_000);
    expect(quiet).toHaveBeenCalledTimes(1);
    q.stop();

    const busy = vi.fn();
    const b = idleNotice(3000, busy);
    vi.advanceTimersByTime(100);
    b.seen();
    vi.advanceTimersByTime(60_000);
    expect(busy).not.toHaveBeenCalled();
    b.stop();
  });
});

describe('a NATS host that does not resolve', () => {
  const unresolved = /^the NATS host "no-such-host\.invalid" \(from nats:\/\/no-such-host\.invalid:4222\) could not be resolved: .*\((ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_NODATA|EAI_FAIL)\)\.\n {2}Check the host name in NATS_URL/;

  it('is named as such, not as a server that does not answer', async () => {
    await expect(assertNatsHostResolves(UNRESOLVABLE)).rejects.toThrow(unresolved);
    await expect(assertNatsHostResolves('nats://127.0.0.1:1')).resolves.toBeUndefined();
    await expect(assertNatsHostResolves('nats://localhost:1')).resolves.toBeUndefined();
  });

  it('is named by connectNats too', async () => {
    const attempt = connectNats(UNRESOLVABLE, 'test', logger.child({ component: 'test' }));
    await expect(attempt).rejects.toThrow(unresolved);
    await expect(attempt).rejects.toMatchObject({ code: 'XREF_NATS_UNAVAILABLE' });
  });

  it('is what xref tail says, exit 2', async () => {
    const { io } = capture();
    await expect(tailCommand('user_id', 'u1', {}, io, { ...nowhere, natsUrl: UNRESOLVABLE })).rejects.toThrow(unresolved);
    const result = await xref(['tail', 'user_id', 'u1'], { NATS_URL: UNRESOLVABLE });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^xref: the NATS host "no-such-host\.invalid" \(from nats:\/\/no-such-host\.invalid:4222\) could not be resolved/);
    expect(result.stderr).not.toContain('no NATS server answers');
  });
});
