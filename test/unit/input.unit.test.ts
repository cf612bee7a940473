import type { JsMsg } from '@nats-io/jetstream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deliveredInput, publishedMsOf, streamSeqOf } from '../../src/nats/jetstream-input-log.ts';

/** A delivered message as the client builds it: its reply subject, and its own `seq` (not to be read). */
const delivered = (reply: string | undefined) =>
  ({
    reply,
    get seq(): number {
      throw new Error('read the reply subject instead');
    },
  }) as unknown as JsMsg;

const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });

describe('stream sequence of a delivered message', () => {
  it('is read from the reply subject, in the old form and in the form with a domain', () => {
    fc.assert(
      fc.property(token, token, token, token, count, count, fc.nat(), count, fc.boolean(), (domain, hash, stream, consumer, seq, consumerSeq, delivery, pending, random) => {
        const tail = `${delivery}.${seq}.${consumerSeq}.1700000000000000000.${pending}`;
        expect(streamSeqOf(delivered(`$JS.ACK.${stream}.${consumer}.${tail}`))).toBe(seq);
        expect(streamSeqOf(delivered(`$JS.ACK.${domain}.${hash}.${stream}.${consumer}.${tail}${random ? '.r4nd0m' : ''}`))).toBe(seq);
      }),
    );
  });

  it('gives the publish time, in milliseconds, from the same subject in both forms', () => {
    fc.assert(
      fc.property(token, token, token, token, count, fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.integer({ min: 0, max: 999_999 }), fc.boolean(), (domain, hash, stream, consumer, seq, ms, nanos, random) => {
        const tail = `1.${seq}.2.${BigInt(ms) * 1_000_000n + BigInt(nanos)}.0`;
        expect(publishedMsOf(delivered(`$JS.ACK.${stream}.${consumer}.${tail}`))).toBe(ms);
        expect(publishedMsOf(delivered(`$JS.ACK.${domain}.${hash}.${stream}.${consumer}.${tail}${random ? '.r4nd0m' : ''}`))).toBe(ms);
      }),
    );
  });

  it("leaves a subject of another form to the client's own parser", () => {
    const fallback = { reply: '_INBOX.abc', seq: 7 } as unknown as JsMsg;
    expect(streamSeqOf(fallback)).toBe(7);
    expect(streamSeqOf({ seq: 8 } as unknown as JsMsg)).toBe(8);
  });
});

describe('a header of a delivered message', () => {
  const block = 'NATS/1.0\r\nNats-Msg-Id: m1\r\nXref-Resolution: {"seq":7,"user":{"kind":"db_id","id":"ü"}}\r\n\r\n';
  const raw = Buffer.concat([Buffer.from(block), Buffer.from('{"payload":1}')]);
  const withRaw = (hdr: number) => ({ reply: '_INBOX.x', seq: 1, data: raw.subarray(Math.max(hdr, 0)), msg: { _rdata: raw, _msg: { hdr } } }) as unknown as JsMsg;

  it('is read from the header block as it came, UTF-8 included', () => {
    const input = deliveredInput(withRaw(Buffer.byteLength(block)));
    expect(input.header!('Xref-Resolution')).toBe('{"seq":7,"user":{"kind":"db_id","id":"ü"}}');
    expect(input.header!('Nats-Msg-Id')).toBe('m1');
    expect(input.header!('Xref-Other')).toBeUndefined();
  });

  it("is the client's own reading where the block is not where it is looked for", () => {
    const headers = new Map([['Xref-Resolution', '{"seq":8}']]);
    const msg = { reply: '_INBOX.x', seq: 1, data: new Uint8Array(0), headers: { get: (name: string) => headers.get(name) ?? '' } } as unknown as JsMsg;
    expect(deliveredInput(msg).header!('Xref-Resolution')).toBe('{"seq":8}');
    expect(deliveredInput(withRaw(-1)).header!('Xref-Resolution')).toBeUndefined();
  });
});
