import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { KvSnapshotStore, NatsStateStore } from '../../src/nats/state-store.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { snapshotStoreContract } from '../helpers/snapshot-store-contract.ts';

const log = logger.child({ component: 'test-snapshots' });

snapshotStoreContract(
  'over the JetStream KV state store',
  async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    await ensureTopology(nc, await jetstreamManager(nc), log);
    const publishers: JetStreamPublisher[] = [];
    /** A state store as one engine process has it: its own publisher. */
    const openState = async () => {
      const publisher = new JetStreamPublisher(nc, log);
      publishers.push(publisher);
      return new NatsStateStore(nc, jetstream(nc), publisher, log);
    };
    return {
      store: new KvSnapshotStore('u', await openState(), []),
      openState,
      close: async () => {
        for (const publisher of publishers) await publisher.close();
        await nc.close();
        await server.stop();
      },
    };
  },
  { overStateStore: true },
);
