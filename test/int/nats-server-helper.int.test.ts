import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { natsServerVersion, startNatsServer, type NatsServerHandle } from '../helpers/nats-server.ts';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('test helper: nats-server child process', () => {
  let server: NatsServerHandle | undefined;
  const connections: NatsConnection[] = [];

  afterAll(async () => {
    for (const nc of connections) if (!nc.isClosed()) await nc.close();
    await server?.stop();
  });

  it('reports the nats-server version', () => {
    expect(natsServerVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('starts, keeps a file stream across restart() and cleans up on stop()', async () => {
    server = await startNatsServer();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(existsSync(server.storeDir)).toBe(true);
    const firstPid = server.pid;
    expect(isAlive(firstPid)).toBe(true);

    const nc = await connect({ servers: server.url, reconnect: false });
    connections.push(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'HELPER', subjects: ['helper.>'], storage: StorageType.File });
    const js = jetstream(nc);
    for (let i = 1; i <= 3; i++) {
      const ack = await js.publish(`helper.m${i}`, `message ${i}`, { msgID: `m${i}` });
      expect(ack.seq).toBe(i);
    }
    await nc.close();

    await server.restart();
    expect(server.pid).not.toBe(firstPid);
    expect(isAlive(firstPid)).toBe(false);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);

    const nc2 = await connect({ servers: server.url, reconnect: false });
    connections.push(nc2);
    const info = await (await jetstreamManager(nc2)).streams.info('HELPER');
    expect(info.state.messages).toBe(3);
    expect(info.state.last_seq).toBe(3);
    await nc2.close();

    const { pid, storeDir } = server;
    await server.stop();
    server = undefined;
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(storeDir)).toBe(false);
  });

  it('kill() stops the child and a caller-owned store dir survives stop()', async () => {
    const first = await startNatsServer();
    try {
      await first.kill();
      expect(isAlive(first.pid)).toBe(false);
      // Reuse the same (now unused) store dir from the outside: the second server must not delete it.
      const second = await startNatsServer({ storeDir: first.storeDir });
      expect(second.storeDir).toBe(first.storeDir);
      await second.stop();
      expect(existsSync(first.storeDir)).toBe(true);
    } finally {
      await first.stop();
    }
    expect(existsSync(first.storeDir)).toBe(false);
  });
});
