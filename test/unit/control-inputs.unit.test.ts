import { describe, expect, it } from 'vitest';
import { parseControl } from '../../src/domain/control.ts';
import { idHasher, newSalt } from '../../src/domain/id-hash.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { Grouper } from '../../src/group.ts';
import { StoredInput } from '../../src/runtime/input-log.ts';
import { decodeInput } from '../../src/service/input.ts';
import { ev, idsOf } from '../helpers/events.ts';

const hash = idHasher(newSalt());
const base = { request: '6f1c2a3b-0000-4000-8000-000000000001', by: 'test', at: '2026-12-01T10:00:00.000Z' };
const forget = (id: string, request = base.request) => ({ verb: 'forget' as const, ...base, request, user: { kind: 'user_id', hash: hash('user_id', id) }, suppress: true });
const unlink = (kind: string, value: string, block = false) => ({ verb: 'unlink' as const, ...base, identifier: { kind, hash: hash(kind, value) }, block });
const grouper = () => new Grouper({ internal: ['user_id'], buffer: { ttlMs: 60 * 60_000 } }, { hasher: hash });

describe('control inputs', () => {
  it('are read from their subject with every bad field named; an id in clear is refused', () => {
    expect(parseControl('forget', forget('u1'))).toMatchObject({ verb: 'forget', suppress: true });
    expect(() => parseControl('forget', { ...forget('u1'), user: { kind: 'user_id', hash: 'u1' } })).toThrow(/user\.hash must be a salted hash .*, got "u1"/);
    expect(() => parseControl('unlink', forget('u1'))).toThrow(/verb must be "unlink"/);
    expect(() => parseControl('forget', { ...forget('u1'), request: 'r1' })).toThrow(/request must be a request id/);
    const decoded = decodeInput(new StoredInput(3, 'xref.ctl.forget', Buffer.from(JSON.stringify(forget('u1'))), 0), defaultLimits());
    expect('control' in decoded && decoded.control.verb).toBe('forget');
    const bad = decodeInput(new StoredInput(4, 'xref.ctl.erase', Buffer.from(JSON.stringify(forget('u1'))), 0), defaultLimits());
    expect('rejected' in bad && bad.record.field).toBe('subject');
  });

  it('the same id hashes the same under one salt, differently under another', () => {
    expect(hash('cookie', 'c1')).toBe(hash('cookie', 'c1'));
    expect(hash('cookie', 'c1')).not.toBe(idHasher(newSalt())('cookie', 'c1'));
    expect(hash('cookie', 'c1')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('offline, a forget takes the user out of what was grouped, suppresses its ids, and an unsuppress lets one in afresh', () => {
    const g = grouper();
    for (const e of [ev('e1', { cookie: 'c1' }, { minute: 0 }), ev('e2', { user_id: 'u1', cookie: 'c1' }, { minute: 1 }), ev('e3', { user_id: 'u2', cookie: 'c2' }, { minute: 2 })]) g.add(e);
    g.control(forget('u1'));
    g.add(ev('e4', { cookie: 'c1' }, { minute: 3 }));
    g.control({ verb: 'unsuppress', ...base, request: '6f1c2a3b-0000-4000-8000-000000000002', identifier: { kind: 'cookie', hash: hash('cookie', 'c1') } });
    g.add(ev('e5', { cookie: 'c1' }, { minute: 4 }));
    g.add(ev('e6', { user_id: 'u3', cookie: 'c1' }, { minute: 5 }));
    const report = g.finish();
    expect(idsOf(report.groups)).toEqual({ 'user_id:u2': { 'user_id:u2': ['e3'] }, 'user_id:u3': { 'cookie:c1': ['e5'], 'user_id:u3': ['e6'] } });
    expect(report.audit.some((a) => a.user?.id === 'u1' || a.identifier.value === 'c1' && a.user?.id !== 'u3')).toBe(false);
    expect(report.control.map((c) => [c.reason, c.eventId ?? c.lifted ?? null])).toEqual([
      ['forget', null],
      ['suppressed', 'e4'],
      ['unsuppress', true],
    ]);
  });

  it('offline, an unlink retracts what came through the identifier and buffers it again, to flush on the next link', () => {
    const g = grouper();
    for (const e of [ev('e1', { cookie: 'c1' }, { minute: 0 }), ev('e2', { user_id: 'wrong', cookie: 'c1' }, { minute: 1 }), ev('e3', { cookie: 'c1' }, { minute: 2 })]) g.add(e);
    g.control(unlink('cookie', 'c1', true));
    g.add(ev('e4', { user_id: 'wrong', cookie: 'c1' }, { minute: 3 })); // refused: blocked
    g.add(ev('e5', { user_id: 'right', cookie: 'c1' }, { minute: 4 }));
    const report = g.finish();
    expect(idsOf(report.groups)).toEqual({ 'user_id:wrong': { 'user_id:wrong': ['e2', 'e4'] }, 'user_id:right': { 'cookie:c1': ['e1', 'e3'], 'user_id:right': ['e5'] } });
    expect(report.audit.filter((a) => a.reason === 'refused').map((a) => [a.cause, a.user?.id])).toEqual([['blocked', 'wrong']]);
    expect(report.control).toMatchObject([{ reason: 'unlink', found: true, retracted: 2, block: true }]);
  });
});
