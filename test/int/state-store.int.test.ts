import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../src/engine/engine.ts';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsWaits } from '../../src/nats/retry.ts';
import { NatsStateStore } from '../../src/nats/state-store.ts';
import { BUCKETS, linkKey } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/streams.ts';

const log = logger.child({ component: 'test-state' });

function checkpointAt(seq: number, links: Record<string, string>): Checkpoint {
  return { seq, watermark: seq * 1000, links: new Map(Object.entries(links).map(([key, user]) => [key, { user: { key: user }, seq }])), identifiers: [], users: [] };
}

describe('the engine state in KV', () => {
  const nats = useNatsServer('each');

  /** A store as one engine process has it: its own publisher. */
  async function openStore() {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const publisher = new JetStreamPublisher(nats.nc, log);
    return { store: new NatsStateStore(nats.nc, jetstream(nats.nc), publisher, log), publisher };
  }

  it('a checkpoint rewritten at the same input after its interrupted first write is repaired is kept whole', async () => {
    const first = await openStore();
    await first.store.write(checkpointAt(10, { 'cookie:a': 'db_id:u1' }));
    // engine A writes the records of checkpoint 20 and dies before its meta record
    // (it never finishes: the engine dies, its publisher goes with what it had not sent)
    first.store.write(checkpointAt(20, { 'cookie:b': 'db_id:u2' }), { alsoStored: new Promise(() => {}) }).catch(() => undefined);
    const links = await new Kvm(nats.nc).open(BUCKETS.links);
    await waitFor('the interrupted checkpoint record to be stored', async () => (await links.get(linkKey('cookie', 'b'))) !== null);
    await first.publisher.close();

    // engine B loads the state in force (checkpoint 10), undoing A's record, then resumes from the
    // same input and checkpoints at 20 again, within the duplicate window of A's write
    const second = await openStore();
    const loaded = await second.store.load();
    expect(loaded.seq).toBe(10);
    expect([...loaded.links.keys()]).toEqual(['cookie:a']);
    await second.store.write(checkpointAt(20, { 'cookie:b': 'db_id:u2' }));
    await second.publisher.close();

    // the next engine has the link B made
    const third = await openStore();
    const resumed = await third.store.load();
    expect(resumed.seq).toBe(20);
    expect(Object.fromEntries(resumed.links)).toEqual({ 'cookie:a': { user: 'db_id:u1', seq: 10 }, 'cookie:b': { user: 'db_id:u2', seq: 20 } });
    await third.publisher.close();
  });

  it('a passivated actor read while the server is down waits for it and loads once it is back', async () => {
    const nc = await connect({ servers: nats.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const waits = new NatsWaits();
    const publisher = new JetStreamPublisher(nc, log);
    const store = new NatsStateStore(nc, jetstream(nc), publisher, log, { logger: log, waits });
    const snapshot = { status: 'active', value: 'buffering', context: { key: 'cookie:x', members: ['cookie:x'], buffer: [], deadline: null } };
    await store.write({ ...checkpointAt(5, {}), identifiers: [['cookie:x', snapshot]] });

    await nats.server.kill('SIGKILL');
    const read = store.snapshot('i', 'cookie:x');
    await waitFor('the read to wait for the server', () => waits.current.includes('loading passivated actors'), 20_000);
    await nats.server.restart();
    expect(await read).toEqual(snapshot);
    expect(waits.current).toEqual([]);
    await publisher.close();
    await nc.close();
  });
});
