import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/domain/config.ts';
import { loadSettings } from '../../src/settings.ts';
import { logger } from '../../src/log.ts';
import { JetStreamInputLog, consumersOf } from '../../src/nats/jetstream-input-log.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import type { CheckpointWriteOptions, CheckpointWriter } from '../../src/runtime/checkpointer.ts';
import { DurableConsumer, type InputHandler, type OutputMessage } from '../../src/runtime/durable-consumer.ts';
import type { InputMessage } from '../../src/runtime/input-log.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { ev } from '../helpers/events.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { publishEvents, readStream, waitFor } from '../helpers/streams.ts';
import { NatsWaits } from '../../src/nats/retry.ts';

const PROJECTION = 'xref-test-projection';
const log = logger.child({ component: 'test-projection' });

interface Counts {
  readonly seq: number;
  readonly bySubject: ReadonlyMap<string, number>;
}

/** A projection's own checkpoint: a position and its rows, committed together (as a database transaction would). */
class CountsTable implements CheckpointWriter<Counts> {
  committed: Counts = { seq: 0, bySubject: new Map() };
  commits = 0;

  async write(counts: Counts, options: CheckpointWriteOptions): Promise<void> {
    await options.alsoStored;
    if (!options.mayWrite()) throw new Error('the projection lost its lease');
    this.committed = counts;
    this.commits++;
  }
}

/** Counts the inputs of each subject; publishes nothing. */
class Counting implements InputHandler {
  readonly outbox: OutputMessage[] = [];
  readonly bySubject: Map<string, number>;
  seq: number;

  constructor(from: Counts) {
    this.seq = from.seq;
    this.bySubject = new Map(from.bySubject);
  }

  apply(input: InputMessage): undefined {
    this.bySubject.set(input.subject, (this.bySubject.get(input.subject) ?? 0) + 1);
    this.seq = input.seq;
    return undefined;
  }

  skip(seq: number): void {
    this.seq = seq;
  }
}

/** The projection on the runtime, resumed from what its table committed. */
async function startProjection(input: JetStreamInputLog, table: CountsTable) {
  const counting = new Counting(table.committed);
  const consumer = new DurableConsumer<Counts>({
    name: PROJECTION,
    log: input,
    handler: counting,
    maxInFlight: 1000,
    checkpoints: { every: 300, ms: 200, take: () => ({ seq: counting.seq, bySubject: new Map(counting.bySubject) }), writer: table },
    logger: log,
  });
  await consumer.start(table.committed.seq + 1);
  return { consumer, counting };
}

const events = (from: number, count: number) => Array.from({ length: count }, (_, i) => ev(`e${from + i}`, { cookie: `c${(from + i) % 50}`, ...((from + i) % 7 === 0 ? { db_id: `u${(from + i) % 5}` } : {}) }));

describe('consumers of the log on the runtime', () => {
  const nats = useNatsServer();

  it('a projection runs beside the engine with its own consumer and checkpoint: neither start deletes the other consumer', async () => {
    const jsm = await jetstreamManager(nats.nc);
    const consumers = async () => new Map((await consumersOf(jsm, STREAMS.in)).map((c) => [c.name, c.created]));
    await publishEvents(nats.nc, events(0, 600), 'web');
    await publishEvents(nats.nc, events(600, 400), 'app');
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '250' });
    const startEngine = () => EngineService.start({ nc: nats.nc, config: defaultConfig(), settings, logger: logger.child({ component: 'test-engine' }) });
    const input = new JetStreamInputLog({ js: jetstream(nats.nc), jsm, logger: log, waits: new NatsWaits(nats.nc) });
    const table = new CountsTable();

    let engine = await startEngine();
    let projection = await startProjection(input, table);
    await waitFor('both to read the log', () => engine.seq >= 1000 && projection.counting.seq >= 1000);
    const both = await consumers();
    expect([...both.keys()].sort()).toEqual(['xref-engine', PROJECTION]);

    // the engine starts again: its own consumer is made anew, the projection's stays and goes on
    await engine.stop();
    engine = await startEngine();
    expect((await consumers()).get(PROJECTION)).toBe(both.get(PROJECTION));
    expect((await consumers()).get('xref-engine')).not.toBe(both.get('xref-engine'));
    await publishEvents(nats.nc, events(1000, 300), 'web');
    await waitFor('both to read the new inputs', () => engine.seq >= 1300 && projection.counting.seq >= 1300);

    // the projection stops (a last checkpoint of its own) and resumes from it: the engine's consumer stays
    await projection.consumer.stop();
    expect(table.committed.seq).toBe(1300);
    const engineConsumer = (await consumers()).get('xref-engine');
    projection = await startProjection(input, table);
    expect((await consumers()).get('xref-engine')).toBe(engineConsumer);
    await publishEvents(nats.nc, events(1300, 200), 'app');
    await waitFor('both to read the last inputs', () => engine.seq >= 1500 && projection.counting.seq >= 1500);
    await waitFor('the projection to ack them all', async () => (await jsm.consumers.info(STREAMS.in, PROJECTION)).ack_floor.stream_seq >= 1500);
    await projection.consumer.stop();
    await engine.stop();

    // each input counted once across the restarts, from the projection's own checkpoint
    expect(Object.fromEntries(table.committed.bySubject)).toEqual({ 'xref.in.web': 900, 'xref.in.app': 600 });
    expect(table.commits).toBeGreaterThan(2);
    expect(projection.consumer.error).toBeUndefined();
    // and the engine did its own work meanwhile
    const groups = await readStream(nats.nc, STREAMS.groups);
    expect(new Set(groups.map((m) => m.msgId)).size).toBe(groups.length);
    expect(groups.length).toBeGreaterThan(0);
  });
});
