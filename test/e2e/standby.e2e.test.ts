import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { consumersOf } from '../../src/nats/jetstream-input-log.ts';
import { STREAMS } from '../../src/nats/subjects.ts';
import { isEngineConsumer } from '../../src/service/engine-service.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { chaosLog } from '../helpers/chaos-log.ts';
import { compare } from '../helpers/chaos-run.ts';
import { ackFloor, exited, startEngineProcess } from '../helpers/engine-process.ts';
import { freePort, useNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/streams.ts';

const TTL_MS = 2000;
const trials = Number(process.env.XREF_TAKEOVER_TRIALS ?? 2);

describe('one engine per log, with a hot standby', () => {
  const nats = useNatsServer('each');

  /** A hard log, its config in a file, the env both engines run with, and a publisher. */
  async function setUp(events: number, ttlMs = TTL_MS) {
    const log = chaosLog({ seed: 77, events });
    const dir = mkdtempSync(join(tmpdir(), 'xref-standby-'));
    writeFileSync(join(dir, 'xref.json'), JSON.stringify(log.config));
    const env = { XREF_CONFIG: join(dir, 'xref.json'), XREF_LEASE_TTL_MS: String(ttlMs), XREF_CHECKPOINT_EVERY: '500', XREF_CHECKPOINT_MS: '500', XREF_LOG_LEVEL: 'info' };
    const jsm = await jetstreamManager(nats.nc);
    await ensureTopology(nats.nc, jsm, logger.child({ component: 'test-topology' }));
    const publisher = new JetStreamPublisher(nats.nc, logger.child({ component: 'test-publisher' }));
    const publish = (from: number, to: number) => Promise.all(log.events.slice(from, to).map((e) => publisher.publish('xref.in.test', JSON.stringify(e), String(e.id))));
    const lastInput = async () => (await jsm.streams.info(STREAMS.in)).state.last_seq;
    const outputsSeq = async () => (await jsm.streams.info(STREAMS.groups)).state.last_seq;
    return { log, env, jsm, publisher, publish, lastInput, outputsSeq };
  }

  it('a second engine stands by (its collector ready, its engine "standby") while the first applies the whole log alone', async () => {
    // the default TTL: a healthy holder on a busy machine keeps its lease (the takeovers below use a short one)
    const { log, env, jsm, publisher, publish, lastInput } = await setUp(6000, 10_000);
    const active = startEngineProcess(nats.server.url, env);
    await waitFor('the first engine to run', () => active.output().includes('xref is running'));
    await waitFor('the first engine to hold the lease', async () => (await ackFloor(jsm).catch(() => 0)) >= 0 && active.output().includes('state loaded'));
    const port = await freePort();
    const standby = startEngineProcess(nats.server.url, { ...env, PORT: String(port) });
    await waitFor('the second to stand by', () => standby.output().includes('standby: the engine lease is held by'), 30_000);
    const consumers = async () => (await consumersOf(jsm, STREAMS.in)).filter((c) => isEngineConsumer(c.name)).map((c) => `${c.name} ${c.created}`);
    const consumer = await consumers();
    await publish(0, log.events.length);
    await waitFor('the first engine to apply the log', async () => (await ackFloor(jsm)) >= (await lastInput()), 60_000);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, engine: 'standby' });
    // the standby never touched the engine's consumer (made once, by the first)
    expect(await consumers(), `${active.output()}\n----\n${standby.output()}`).toEqual(consumer);
    expect(standby.output(), `${active.output()}\n----\n${standby.output()}`).not.toMatch(/taking over: |state loaded/);
    for (const engine of [standby, active]) {
      engine.kill('SIGTERM');
      expect(await exited(engine), engine.output()).toBe(0);
    }
    await publisher.close();
    expect(await compare(nats.nc, log.events, log.config, [])).toMatchObject({ differences: [] });
  });

  it(`kill -9 of the active engine under load, ${trials} times: a standby takes over, nothing lost, nothing twice`, async () => {
    const { log, env, jsm, publisher, publish, lastInput, outputsSeq } = await setUp(12_000);
    let active = startEngineProcess(nats.server.url, env);
    await waitFor('the first engine to run', () => active.output().includes('state loaded'));
    const takeovers: number[] = [];
    const step = Math.floor(log.events.length / (trials + 1));
    for (let trial = 0; trial < trials; trial++) {
      const standby = startEngineProcess(nats.server.url, env);
      await waitFor('a standby', () => standby.output().includes('standby: the engine lease is held by'), 30_000);
      const load = publish(trial * step, (trial + 1) * step);
      await waitFor('the active engine to be busy', async () => (await ackFloor(jsm)) > trial * step * 0.6, 30_000);
      active.kill('SIGKILL');
      const killedAt = Date.now();
      await exited(active);
      const before = await outputsSeq();
      await load;
      await waitFor('the standby to take over and apply what was published', async () => (await ackFloor(jsm)) >= (await lastInput()), 60_000);
      expect(standby.output()).toMatch(/taking over: the engine lease lapsed/);
      const first = await jsm.streams.getMessage(STREAMS.groups, { seq: before + 1 });
      if (first !== null) takeovers.push(first.time.getTime() - killedAt);
      active = standby;
    }
    await publish(trials * step, log.events.length);
    await waitFor('the last engine to finish the log', async () => (await ackFloor(jsm)) >= (await lastInput()), 60_000);
    active.kill('SIGTERM');
    expect(await exited(active), active.output()).toBe(0);
    await publisher.close();
    const result = await compare(nats.nc, log.events, log.config, []);
    expect(result.differences.slice(0, 20)).toEqual([]);
    if (process.env.XREF_TAKEOVER_REPORT) writeFileSync(process.env.XREF_TAKEOVER_REPORT, `${JSON.stringify({ ttlMs: TTL_MS, takeovers, outputs: result.outputs })}\n`, { flag: 'a' });
    // a standby starts only once the lease lapsed: at least a TTL after the last renewal
    for (const ms of takeovers) expect(ms).toBeGreaterThan(TTL_MS * 0.5);
  }, 300_000);

  it('the active engine paused past the lease (SIGSTOP), then resumed: it is fenced, stands by, and the outputs still equal the oracle', async () => {
    const { log, env, jsm, publisher, publish, lastInput } = await setUp(8000);
    const first = startEngineProcess(nats.server.url, env);
    await waitFor('the first engine to run', () => first.output().includes('state loaded'));
    const second = startEngineProcess(nats.server.url, env);
    await waitFor('a standby', () => second.output().includes('standby: the engine lease is held by'), 30_000);
    const load = publish(0, log.events.length / 2);
    await waitFor('the first engine to be busy', async () => (await ackFloor(jsm)) > 500, 30_000);
    first.kill('SIGSTOP');
    await waitFor('the standby to take over', () => second.output().includes('taking over: the engine lease lapsed'), 30_000);
    await load;
    await waitFor('the new engine to apply the first half', async () => (await ackFloor(jsm)) >= (await lastInput()), 60_000);
    first.kill('SIGCONT');
    await waitFor('the paused engine to find itself fenced', () => /the engine lease was lost|fenced/.test(first.output()), 30_000);
    await publish(log.events.length / 2, log.events.length);
    await waitFor('the new engine to finish the log', async () => (await ackFloor(jsm)) >= (await lastInput()), 60_000).catch((error: Error) => {
      throw new Error(`${error.message}\nfirst:\n${first.output().slice(-4000)}\nsecond:\n${second.output().slice(-4000)}`);
    });
    expect(first.output()).toMatch(/standby: the engine lease is held by/);
    for (const engine of [first, second]) {
      engine.kill('SIGTERM');
      expect(await exited(engine), engine.output()).toBe(0);
    }
    // a third engine resumes from the state the second left: nothing it loads came from the fenced one
    const third = startEngineProcess(nats.server.url, env);
    await waitFor('the third engine to run', () => third.output().includes('state loaded'));
    third.kill('SIGTERM');
    expect(await exited(third), third.output()).toBe(0);
    await publisher.close();
    const result = await compare(nats.nc, log.events, log.config, []);
    expect(result.differences.slice(0, 20)).toEqual([]);
  }, 300_000);
});
