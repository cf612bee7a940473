import { describe, expect, it } from 'vitest';
import { refusedFact } from '../../actors/audit-facts.ts';
import { auditId, auditRecord, rejectedId, resolvedId, unmatchedId } from '../../src/engine/records.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { StoredInput } from '../../src/runtime/input-log.ts';
import { decodeInput } from '../../src/service/input.ts';

describe('output ids', () => {
  // JetStream dedups on these and replays are compared on them: a change in format is a breaking change
  it('keep their formats', () => {
    expect(resolvedId('e1', { kind: 'db_id', id: '42' })).toBe('e1:db_id.42');
    expect(unmatchedId('e1')).toBe('e1:unmatched');
    expect(auditId('e1', 'link', 'cookie:a:b')).toBe('e1:link:cookie:a:b');
    expect(rejectedId(17)).toBe('in-17:rejected');
  });

  it('a rejected input takes its id from the records', () => {
    const decoded = decodeInput(new StoredInput(17, 'xref.in.cli', Buffer.from('{}'), 0), defaultLimits());
    expect('rejected' in decoded && decoded.rejected.msgId).toBe(rejectedId(17));
  });
});

describe('audit records', () => {
  it('carry what the fact says, and no field it leaves out', () => {
    expect(auditRecord(refusedFact('cookie:null', undefined, 'junk', 3, 'e3'))).toStrictEqual({
      outputId: 'e3:refused:cookie:null',
      reason: 'refused',
      identifier: { kind: 'cookie', value: 'null' },
      cause: 'junk',
      seq: 3,
      eventId: 'e3',
    });
  });
});
