/**
 * XREF_ADMIN_TOKENS as loadSettings reads it (an admin token is a secret of its own: no write
 * key, no read token; messages name the entry, never a token), how an admin token is named in a
 * control input, and xref_suppressed_total from the engine's totals.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adminTokenName } from '../../src/http/auth.ts';
import { createMetrics, setEngineGauges } from '../../src/http/metrics.ts';
import { loadSettings, settingDefaults } from '../../src/settings.ts';

const ADMIN = 'at_unit_6b0f1d';
const OTHER = 'at_unit_other_93';

describe('XREF_ADMIN_TOKENS', () => {
  it('comma-separated, trimmed, deduplicated; unset or blank: none (the default)', () => {
    expect(settingDefaults().adminTokens).toEqual([]);
    expect(loadSettings({}).adminTokens).toEqual([]);
    expect(loadSettings({ XREF_ADMIN_TOKENS: '  ' }).adminTokens).toEqual([]);
    expect(loadSettings({ XREF_ADMIN_TOKENS: ` ${ADMIN} ,${OTHER},${ADMIN}` }).adminTokens).toEqual([ADMIN, OTHER]);
  });

  it('an empty entry, a space, a write key or a read token is refused naming XREF_ADMIN_TOKENS and the entry, never the token', () => {
    const cases: Array<[env: Record<string, string>, message: RegExp]> = [
      [{ XREF_ADMIN_TOKENS: `${ADMIN},,${OTHER}` }, /^XREF_ADMIN_TOKENS entry 2 is empty: list the tokens separated by single commas, e.g. XREF_ADMIN_TOKENS=token1,token2$/],
      [{ XREF_ADMIN_TOKENS: `${ADMIN},at two` }, /^XREF_ADMIN_TOKENS entry 2 holds a space \(an admin token is sent as Authorization: Bearer <token>, which cannot\)$/],
      [{ XREF_WRITE_KEYS: `wk_1,${ADMIN}`, XREF_ADMIN_TOKENS: ADMIN }, /^XREF_ADMIN_TOKENS entry 1 is also a write key \(XREF_WRITE_KEYS\): write keys are public in web pages, so an admin token must be another secret$/],
      [{ XREF_READ_TOKENS: `rt_1,${OTHER}`, XREF_ADMIN_TOKENS: `${ADMIN},${OTHER}` }, /^XREF_ADMIN_TOKENS entry 2 is also a read token \(XREF_READ_TOKENS\): whoever may read must not erase, so an admin token must be another secret$/],
    ];
    for (const [env, message] of cases) {
      let thrown: unknown;
      try {
        loadSettings(env);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, JSON.stringify(env)).toMatchObject({ code: 'XREF_INVALID_CONFIG', field: 'XREF_ADMIN_TOKENS' });
      const text = (thrown as Error).message;
      expect(text).toMatch(message);
      for (const secret of [ADMIN, OTHER]) expect(text).not.toContain(secret);
    }
  });

  it('the read tokens keep their own checks (the same messages as before)', () => {
    expect(() => loadSettings({ XREF_WRITE_KEYS: 'wk_1', XREF_READ_TOKENS: 'wk_1' })).toThrow(
      /^XREF_READ_TOKENS entry 1 is also a write key \(XREF_WRITE_KEYS\): write keys are public in web pages, so a read token must be another secret$/,
    );
    expect(() => loadSettings({ XREF_READ_TOKENS: 'a b' })).toThrow(/^XREF_READ_TOKENS entry 1 holds a space \(a read token is sent as Authorization: Bearer <token>, which cannot\)$/);
  });

  it('an admin token is named by the first six hex characters of its SHA-256', () => {
    expect(adminTokenName(ADMIN)).toBe(`admin-token:${createHash('sha256').update(ADMIN).digest('hex').slice(0, 6)}`);
    expect(adminTokenName(ADMIN)).toMatch(/^admin-token:[0-9a-f]{6}$/);
  });
});

describe('xref_suppressed_total', () => {
  it("counts what the engine's total grew by; a lower total is a new engine's, counted from 0", async () => {
    const metrics = createMetrics({ processMetrics: false });
    const value = async () => (await metrics.registry.getSingleMetric('xref_suppressed_total')!.get()).values[0]?.value;
    expect(await value()).toBe(0);
    for (const total of [3, 3, 5, 2, 4]) setEngineGauges(metrics, { suppressed: total });
    expect(await value()).toBe(9);
    expect(await metrics.registry.metrics()).toMatch(/^# TYPE xref_suppressed_total counter\nxref_suppressed_total 9$/m);
  });
});
