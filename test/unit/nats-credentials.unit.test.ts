/**
 * xref's NATS credentials as loadSettings reads them (NATS_USER with NATS_PASSWORD, NATS_TOKEN or
 * NATS_CREDS, at most one; none in NATS_URL), what connect() is given for each, and what the log
 * says of them: never a secret. The connections themselves: test/int/nats-credentials.int.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { authName, authOptions, connectNats } from '../../src/nats/connection.ts';
import { type NatsAuth, loadSettings, settingDefaults } from '../../src/settings.ts';

const PASSWORD = 'pw_unit_5e7a1c';
const TOKEN = 'tk_unit_93b0d2';
const dir = mkdtempSync(join(tmpdir(), 'xref-creds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What `run` threw (it must throw). */
function thrown(run: () => unknown): Error & { code?: string; field?: string } {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

/** A .creds file as nsc writes it: a user JWT (any text: the client does not read it) and an NKEY seed. */
function credsFile(name: string, jwt: string, seed: Uint8Array): string {
  const file = join(dir, name);
  const text = [
    '-----BEGIN NATS USER JWT-----', jwt, '------END NATS USER JWT------', '',
    '************************* IMPORTANT *************************', '',
    '-----BEGIN USER NKEY SEED-----', new TextDecoder().decode(seed), '------END USER NKEY SEED------', '',
  ].join('\n');
  writeFileSync(file, text);
  return file;
}

describe('NATS_USER / NATS_PASSWORD, NATS_TOKEN, NATS_CREDS', () => {
  it('one scheme each; unset or empty: none (the default)', () => {
    expect(settingDefaults().natsAuth).toEqual({ scheme: 'none' });
    expect(loadSettings({}).natsAuth).toEqual({ scheme: 'none' });
    expect(loadSettings({ NATS_USER: '', NATS_PASSWORD: '', NATS_TOKEN: '' }).natsAuth).toEqual({ scheme: 'none' });
    expect(loadSettings({ NATS_USER: 'xref', NATS_PASSWORD: PASSWORD }).natsAuth).toEqual({ scheme: 'user', user: 'xref', pass: PASSWORD });
    expect(loadSettings({ NATS_TOKEN: TOKEN, NATS_USER: '' }).natsAuth).toEqual({ scheme: 'token', token: TOKEN });
    expect(loadSettings({ NATS_CREDS: '/etc/xref/xref.creds' }).natsAuth).toEqual({ scheme: 'creds', credsFile: '/etc/xref/xref.creds' });
  });

  it('two schemes, or a user without a password (or the other way round), are refused naming the settings, never a secret', () => {
    const cases: Array<[env: Record<string, string>, field: string, message: RegExp]> = [
      [{ NATS_USER: 'xref', NATS_PASSWORD: PASSWORD, NATS_TOKEN: TOKEN }, 'NATS_TOKEN', /^NATS_USER\/NATS_PASSWORD and NATS_TOKEN are both set: set one way for xref to authenticate to NATS \(NATS_USER with NATS_PASSWORD, NATS_TOKEN, or NATS_CREDS\)$/],
      [{ NATS_TOKEN: TOKEN, NATS_CREDS: '/x.creds' }, 'NATS_CREDS', /^NATS_TOKEN and NATS_CREDS are both set/],
      [{ NATS_PASSWORD: PASSWORD, NATS_CREDS: '/x.creds' }, 'NATS_CREDS', /^NATS_PASSWORD and NATS_CREDS are both set/],
      [{ NATS_USER: 'xref' }, 'NATS_PASSWORD', /^NATS_USER is set without NATS_PASSWORD: a NATS user authenticates with both$/],
      [{ NATS_PASSWORD: PASSWORD }, 'NATS_USER', /^NATS_PASSWORD is set without NATS_USER: a NATS user authenticates with both$/],
    ];
    for (const [env, field, message] of cases) {
      const error = thrown(() => loadSettings(env));
      expect(error, JSON.stringify(env)).toMatchObject({ code: 'XREF_INVALID_CONFIG', field });
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain(PASSWORD);
      expect(error.message).not.toContain(TOKEN);
    }
  });

  it('credentials in NATS_URL are refused, naming the host and saying where they go, never quoting them', () => {
    for (const url of [`nats://xref:${PASSWORD}@nats.internal:4222`, `nats://${TOKEN}@nats.internal:4222`, `tls://xref:a/b#${PASSWORD}@nats.internal:4222`]) {
      expect(thrown(() => loadSettings({ NATS_URL: url })), url).toMatchObject({
        code: 'XREF_INVALID_CONFIG',
        field: 'NATS_URL',
        message:
          'NATS_URL holds credentials before the host "nats.internal:4222", which the NATS client does not send: set NATS_URL=nats://<host>:<port> and the credentials in NATS_USER and NATS_PASSWORD (a token in NATS_TOKEN)',
      });
    }
    expect(loadSettings({ NATS_URL: 'nats://nats.internal:4222' }).natsUrl).toBe('nats://nats.internal:4222');
  });

  it('connect() gets the user and password, or the token; the log and the messages name the user or the file, never a secret', () => {
    const cases: Array<[auth: NatsAuth, options: object, name: string]> = [
      [{ scheme: 'none' }, {}, 'no credentials'],
      [{ scheme: 'user', user: 'xref', pass: PASSWORD }, { user: 'xref', pass: PASSWORD }, 'the user "xref" (NATS_USER, NATS_PASSWORD)'],
      [{ scheme: 'token', token: TOKEN }, { token: TOKEN }, 'the token of NATS_TOKEN'],
    ];
    for (const [auth, options, name] of cases) {
      expect(authOptions(auth)).toEqual(options);
      expect(authName(auth)).toBe(name);
    }
    expect(authName({ scheme: 'creds', credsFile: '/etc/xref/xref.creds' })).toBe('the credentials file "/etc/xref/xref.creds" (NATS_CREDS)');
  });
});

describe('NATS_CREDS', () => {
  it("signs the server's nonce with the file's seed and sends its JWT; a renewed file is read at the next connection, a vanished one leaves the last", () => {
    const user = nkeys.createUser();
    const file = credsFile('xref.creds', 'first.jwt.text', user.getSeed());
    const { authenticator } = authOptions({ scheme: 'creds', credsFile: file });
    if (typeof authenticator !== 'function') throw new Error('expected one authenticator');
    const auth = authenticator('nonce-1') as { jwt: string; nkey: string; sig: string };
    expect(auth).toMatchObject({ jwt: 'first.jwt.text', nkey: user.getPublicKey() });
    expect(nkeys.fromPublic(auth.nkey).verify(new TextEncoder().encode('nonce-1'), Buffer.from(auth.sig, 'base64url'))).toBe(true);

    credsFile('xref.creds', 'renewed.jwt.text', user.getSeed());
    expect(authenticator('nonce-2')).toMatchObject({ jwt: 'renewed.jwt.text' });
    rmSync(file);
    expect(authenticator('nonce-3')).toMatchObject({ jwt: 'renewed.jwt.text' });
  });

  it('a file that cannot be read, or is no credentials file, is an XREF_INVALID_CONFIG naming NATS_CREDS and the path, before any connection', () => {
    const missing = join(dir, 'missing.creds');
    expect(thrown(() => authOptions({ scheme: 'creds', credsFile: missing }))).toMatchObject({
      code: 'XREF_INVALID_CONFIG',
      field: 'NATS_CREDS',
      message: `NATS_CREDS ${JSON.stringify(missing)} cannot be read (ENOENT)`,
    });
    const junk = join(dir, 'junk.creds');
    writeFileSync(junk, `password=${PASSWORD}\n`);
    const error = thrown(() => authOptions({ scheme: 'creds', credsFile: junk }));
    expect(error).toMatchObject({ code: 'XREF_INVALID_CONFIG', field: 'NATS_CREDS' });
    expect(error.message).toMatch(/^NATS_CREDS ".*junk\.creds" is not a NATS credentials file \(a user JWT and its NKEY seed, as nsc writes it\): /);
    expect(error.message).not.toContain(PASSWORD);
  });
});

describe('connectNats', () => {
  it('refuses a URL with credentials before connecting, as loadSettings does (nothing listens there)', async () => {
    await expect(connectNats(`nats://xref:${PASSWORD}@127.0.0.1:1`, 'test', pino({ level: 'silent' }), { scheme: 'none' })).rejects.toMatchObject({
      code: 'XREF_INVALID_CONFIG',
      field: 'NATS_URL',
      message: expect.not.stringContaining(PASSWORD),
    });
  });
});
