import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.ts';
import { Kvm } from '@nats-io/kv';
import { Lease, thisProcess } from '../../src/nats/lease.ts';
import { BUCKETS } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/streams.ts';

const TTL_MS = 600;
const log = logger.child({ component: 'test-lease' });

describe('the engine lease', () => {
  const nats = useNatsServer('each');
  const lease = (lost?: (why: string) => void) => new Lease(nats.nc, 'test-consumer', thisProcess(), TTL_MS, log, lost);

  it('one holder at a time; a standby takes over only once the holder stopped renewing, after the holder stopped counting itself valid', async () => {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const lostBy: string[] = [];
    const first = lease((why) => lostBy.push(why));
    const second = lease();
    expect(await first.tryAcquire()).toEqual({ acquired: true });
    expect(first.valid()).toBe(true);
    // renewed meanwhile: the standby never sees one revision for a whole TTL
    const deadline = performance.now() + TTL_MS * 3;
    while (performance.now() < deadline) expect((await second.tryAcquire()).acquired).toBe(false);
    expect(first.valid()).toBe(true);
    expect(first.epoch).toBeGreaterThan(0);

    // the holder stops renewing (as if paused): it is invalid before the standby may take over
    (first as unknown as { timer: NodeJS.Timeout }).timer.close();
    let invalidAt = 0;
    let takenAt = 0;
    await waitFor(
      'the standby to take over',
      async () => {
        if (!first.valid()) invalidAt ||= performance.now();
        if ((await second.tryAcquire()).acquired) takenAt = performance.now();
        return takenAt > 0;
      },
      10_000,
    );
    expect(invalidAt).toBeGreaterThan(0);
    expect(invalidAt).toBeLessThan(takenAt);
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect(await second.holderNow()).toEqual(second.holder);
    await second.release();
    expect(await second.holderNow()).toBeUndefined();
    expect(lostBy).toEqual([]);
  });

  it('a holder that lapsed takes its own lease back at once when nobody took it; a released lease is taken at once', async () => {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const holder = lease();
    expect((await holder.tryAcquire()).acquired).toBe(true);
    const epoch = holder.epoch;
    (holder as unknown as { timer: NodeJS.Timeout }).timer.close();
    await waitFor('the lease to lapse', () => !holder.valid(), 5_000);
    expect(await holder.tryAcquire()).toEqual({ acquired: true });
    expect(holder.epoch).toBeGreaterThan(epoch);
    await holder.release();
    const next = lease();
    expect(await next.tryAcquire()).toEqual({ acquired: true });
    await next.release();
  });

  it('a release while a renewal is under way still frees the lease at once', async () => {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const holder = lease();
    expect(await holder.tryAcquire()).toEqual({ acquired: true });
    // a renewal sent, its answer not back yet, when the holder stops
    const renewal = (holder as unknown as { renew(): Promise<void> }).renew();
    await holder.release();
    await renewal;
    expect(await holder.holderNow()).toBeUndefined();
    expect(await lease().tryAcquire()).toEqual({ acquired: true });
  });

  it('a release after a renewal stored without its answer (a timeout) still frees the lease at once', async () => {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const holder = lease();
    expect(await holder.tryAcquire()).toEqual({ acquired: true });
    // the lease renewed behind the holder's back, as a renewal whose answer was lost leaves it
    const kv = await new Kvm(nats.nc).open(BUCKETS.leases);
    const entry = (await kv.get('test-consumer'))!;
    await kv.update('test-consumer', entry.string(), entry.revision);
    await holder.release();
    expect(await holder.holderNow()).toBeUndefined();
  });

  it('a renewal stored without its answer (a timeout on a busy server) keeps the lease: the holder is not fenced by its own write', async () => {
    await ensureTopology(nats.nc, await jetstreamManager(nats.nc), log);
    const lostBy: string[] = [];
    const holder = lease((why) => lostBy.push(why));
    expect(await holder.tryAcquire()).toEqual({ acquired: true });
    const epoch = holder.epoch;
    // the holder's own record stored at a revision it never heard of, as a lost answer leaves it
    const kv = await new Kvm(nats.nc).open(BUCKETS.leases);
    const entry = (await kv.get('test-consumer'))!;
    const moved = await kv.update('test-consumer', entry.string(), entry.revision);
    await waitFor('a renewal past the moved revision', async () => ((await kv.get('test-consumer'))?.revision ?? 0) > moved, 5_000);
    expect(lostBy).toEqual([]);
    expect(holder.valid()).toBe(true);
    expect(holder.epoch).toBe(epoch);
    // a record of another process at that revision is a takeover all the same
    const other = (await kv.get('test-consumer'))!;
    await kv.update('test-consumer', JSON.stringify({ holder: thisProcess(), renewedAt: new Date().toISOString() }), other.revision);
    await waitFor('the holder to find itself fenced', () => lostBy.length > 0, 5_000);
    expect(lostBy).toEqual(['another process took the lease']);
    expect(holder.valid()).toBe(false);
  });
});
