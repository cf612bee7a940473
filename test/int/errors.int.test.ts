/**
 * Errors are monitorable, on a real nats-server: what the engine refuses (schema, a timestamp too
 * far ahead of its publish time, not JSON), what the collector refuses and what `xref publish`
 * refuses all become error records on `xref.errors.<reason>` (XREF_ERRORS), and a refused event
 * is never grouped.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { publishCommand } from '../../src/cli/publish-command.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { ErrorRecord } from '../../src/domain/error-record.ts';
import { defaultLimits } from '../../src/domain/limits.ts';
import { buildApp } from '../../src/http/app.ts';
import { createMetrics } from '../../src/http/metrics.ts';
import { logger } from '../../src/log.ts';
import { JetStreamSink } from '../../src/nats/jetstream-sink.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { replayLog } from '../../src/service/replay.ts';
import { loadSettings } from '../../src/settings.ts';
import { capture } from '../helpers/cli.ts';
import { AUTH, WRITE_KEY } from '../helpers/http.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { type GroupMessage, readStream, waitFor } from '../helpers/streams.ts';

const PURCHASE = { type: 'object', required: ['price'], properties: { price: { type: 'number', minimum: 0 } } };
const CONFIG = { schemas: { purchase: PURCHASE }, maxFutureMs: 60_000 };

const errorsOf = async (nc: Parameters<typeof readStream>[0], origin: ErrorRecord['origin']) => (await readStream<ErrorRecord>(nc, STREAMS.errors)).filter((m) => m.data.origin === origin);

describe('error records on XREF_ERRORS', () => {
  const nats = useNatsServer();

  it('the engine refuses schema violations, timestamps too far ahead of the publish time and non-JSON: records by reason, never grouped', async () => {
    const jsm = await jetstreamManager(nats.nc);
    await ensureTopology(nats.nc, jsm, logger.child({ component: 'test-topology' }));
    const publisher = new JetStreamPublisher(nats.nc, logger.child({ component: 'test-publisher' }));
    const inputs: Array<[msgId: string, text: string]> = [
      ['good', JSON.stringify({ id: 'good', name: 'purchase', ids: { user_id: 'u1' }, data: { price: 5 } })],
      ['bad-price', JSON.stringify({ id: 'bad-price', name: 'purchase', ids: { user_id: 'u1' }, data: { price: -1 } })],
      ['ahead', JSON.stringify({ id: 'ahead', name: 'pageview', ids: { user_id: 'u1' }, timestamp: new Date(Date.now() + 3_600_000).toISOString() })],
      ['garbage', 'not JSON at all'],
    ];
    const acks = await Promise.all(inputs.map(([msgId, text]) => publisher.publish('xref.in.raw', text, msgId)));
    const seqOf = (i: number) => acks[i]!.seq;
    const settings = loadSettings({ NATS_URL: nats.server.url });
    const config = resolveConfig(CONFIG);
    let service = await EngineService.start({ nc: nats.nc, config, settings, logger: logger.child({ component: 'test-engine' }) });
    await waitFor('the engine to apply the inputs', () => service.seq >= seqOf(3));
    expect(service.stats.rejected).toBe(3);
    expect(service.stats.errorsBy).toEqual({ schema_violation: 1, future_timestamp: 1, invalid_json: 1 });
    expect(service.stats.errorsDroppedBy).toEqual({});
    await waitFor('three error records', async () => (await errorsOf(nats.nc, 'engine')).length === 3);

    const records = await errorsOf(nats.nc, 'engine');
    expect(records.map((m) => [m.subject, m.msgId])).toEqual([
      ['xref.errors.schema_violation', `in-${seqOf(1)}:rejected`],
      ['xref.errors.future_timestamp', `in-${seqOf(2)}:rejected`],
      ['xref.errors.invalid_json', `in-${seqOf(3)}:rejected`],
    ]);
    const [schema, future, json] = records.map((m) => m.data);
    expect(schema).toMatchObject({
      id: `in-${seqOf(1)}:rejected`,
      reason: 'schema_violation',
      code: 'XREF_SCHEMA_VIOLATION',
      field: 'data.price',
      value: '-1',
      origin: 'engine',
      source: 'xref.in.raw',
      seq: seqOf(1),
      eventId: 'bad-price',
      raw: inputs[1]![1],
    });
    expect(schema!.message).toBe('data.price must be >= 0, got -1 (schema purchase)');
    expect(future).toMatchObject({ reason: 'future_timestamp', code: 'XREF_FUTURE_TIMESTAMP', field: 'timestamp', origin: 'engine', seq: seqOf(2), eventId: 'ahead' });
    expect(future!.message).toMatch(/^timestamp "[^"]+" is 3\d{6} ms ahead of its arrival, over maxFutureMs 60000$/);
    expect(json).toMatchObject({ reason: 'invalid_json', code: 'XREF_INVALID_JSON', origin: 'engine', seq: seqOf(3), raw: 'not JSON at all' });
    // the record's time is the input's publish time: the same on every replay
    const stored = await jsm.streams.getMessage(STREAMS.in, { seq: seqOf(1) });
    expect(schema!.at).toBe(stored!.time.toISOString());

    // nothing refused is grouped, nothing goes to the audit stream
    const grouped = await readStream<GroupMessage>(nats.nc, STREAMS.groups);
    expect(grouped.map((m) => m.data.event.id)).toEqual(['good']);
    expect((await readStream(nats.nc, STREAMS.audit)).filter((m) => m.subject.endsWith('.rejected'))).toEqual([]);

    // an id refused once is not taken for a duplicate later, restart or not: the same id, fixed, is grouped
    await service.stop();
    service = await EngineService.start({ nc: nats.nc, config, settings, logger: logger.child({ component: 'test-engine' }) });
    const fixed = await publisher.publish('xref.in.raw', JSON.stringify({ id: 'bad-price', name: 'purchase', ids: { user_id: 'u1' }, data: { price: 1 } }), 'bad-price-fixed');
    await waitFor('the fixed event', () => service.seq >= fixed.seq);
    await service.stop();
    await publisher.close();
    expect((await readStream<GroupMessage>(nats.nc, STREAMS.groups)).map((m) => m.data.event.id)).toEqual(['good', 'bad-price']);

    // a replay decides the same: --republish publishes the same ids, stored once
    const result = await replayLog({ nc: nats.nc, natsUrl: nats.server.url, config, logger: logger.child({ component: 'test-replay' }), republish: true });
    expect([result.events, result.rejected, result.rejectedBy]).toEqual([2, 3, { schema_violation: 1, future_timestamp: 1, invalid_json: 1 }]);
    expect((await errorsOf(nats.nc, 'engine')).map((m) => m.msgId)).toEqual(records.map((m) => m.msgId));
  });

  it("the collector's refused items land on XREF_ERRORS (origin http), and its 2xx answer names the stored event's seq", async () => {
    const publisher = new JetStreamPublisher(nats.nc, logger.child({ component: 'test-publisher' }));
    const app = buildApp({
      publisher: new JetStreamSink(publisher),
      writeKeys: new Set([WRITE_KEY]),
      limits: defaultLimits(),
      logger: logger.child({ component: 'test-http' }),
      readiness: async () => ({ ready: true, checks: {} }),
      metrics: createMetrics({ processMetrics: false }),
      publishDeadlineMs: 5000,
    });
    try {
      const ahead = new Date(Date.now() + 3_600_000).toISOString();
      const response = await app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: { ...AUTH, 'content-type': 'application/json' },
        payload: [
          { id: 'http-ok', ids: { cookie: 'h1' } },
          { id: 'http-ahead', ids: { cookie: 'h1' }, timestamp: ahead },
          { id: 'http-bad', ids: { cookie: 42.5 } },
        ],
      });
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json() as { accepted: number; seq: number };
      expect(body.accepted).toBe(1);
      const { state } = await (await jetstreamManager(nats.nc)).streams.info(STREAMS.in);
      expect(body.seq).toBe(state.last_seq);
      await waitFor('two http error records', async () => (await errorsOf(nats.nc, 'http')).length === 2);
      const records = await errorsOf(nats.nc, 'http');
      expect(records.map((m) => [m.subject, m.data.index, m.data.source, m.data.eventId])).toEqual([
        ['xref.errors.future_timestamp', 1, '/v1/events', 'http-ahead'],
        ['xref.errors.invalid_event', 2, '/v1/events', 'http-bad'],
      ]);
      expect(records.map((m) => m.msgId)).toEqual(records.map((m) => m.data.id));
      expect(records[1]!.data).toMatchObject({ field: 'ids.cookie', value: '42.5', code: 'XREF_INVALID_EVENT' });
    } finally {
      await app.close();
      await publisher.close();
    }
  });

  it("`xref publish` records its refused lines (origin publish, index = line number), the config's schemas included", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xref-errors-'));
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(CONFIG));
    const file = join(dir, 'lines.ndjson');
    writeFileSync(
      file,
      [
        JSON.stringify({ id: 'p-ok', name: 'purchase', ids: { user_id: 'p1' }, data: { price: 2 } }),
        '{"id": "broken",',
        JSON.stringify({ id: 'p-schema', name: 'purchase', ids: { user_id: 'p1' }, data: { price: 'two' } }),
        JSON.stringify({ id: 'p-envelope', ids: 'p1' }),
      ].join('\n'),
    );
    const { io, out } = capture();
    expect(await publishCommand(file, { subject: 'xref.in.batch', json: true }, io, { natsUrl: nats.server.url, dataDir: dir, configFile })).toBe(1);
    expect(JSON.parse(out.stdout)).toEqual({ subject: 'xref.in.batch', published: 4, accepted: 1, duplicate: 0, rejected: 3 });
    expect(out.stderr).toMatch(/^line 3: data\.price must be number, got "two" \(schema purchase\)$/m);
    const records = await errorsOf(nats.nc, 'publish');
    expect(records.map((m) => [m.subject, m.data.index, m.data.source, m.data.field])).toEqual([
      ['xref.errors.invalid_json', 2, 'xref.in.batch', undefined],
      ['xref.errors.schema_violation', 3, 'xref.in.batch', 'data.price'],
      ['xref.errors.invalid_event', 4, 'xref.in.batch', 'ids'],
    ]);
    expect(records[1]!.data).toMatchObject({ value: '"two"', eventId: 'p-schema', code: 'XREF_SCHEMA_VIOLATION' });
    expect(JSON.parse(records[2]!.data.raw!)).toEqual({ id: 'p-envelope', ids: 'p1' });
  });
});
