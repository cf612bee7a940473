import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { requestUnlink } from '../../src/control/requests.ts';
import { resolveConfig } from '../../src/domain/config.ts';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { NatsStateStore } from '../../src/nats/state-store.ts';
import { EngineService } from '../../src/service/engine-service.ts';
import { compareStates, replayLog } from '../../src/service/replay.ts';
import { loadSettings } from '../../src/settings.ts';
import { ev } from '../helpers/events.ts';
import { useNatsServer } from '../helpers/nats-server.ts';
import { publishEvents, readStream, waitFor } from '../helpers/streams.ts';

const config = resolveConfig({ internal: ['user_id'], buffer: { ttlMs: 60 * 60_000 } });
const silent = logger.child({ component: 'test' }, { level: 'silent' });

type Group = { retract?: string; output?: string; event?: { id: string }; user: { id: string }; via?: { value: string } };

/** Each user's subject as `[event id or "-<retracted event id>", ...]`, in stream order. */
async function subjectsOf(nc: NatsConnection): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const m of await readStream<Group>(nc, 'XREF_GROUPS')) (out[m.data.user.id] ??= []).push(m.data.retract === undefined ? m.data.event!.id : `-${m.data.retract}`);
  return out;
}

async function liveImage(nc: NatsConnection) {
  return new NatsStateStore(nc, jetstream(nc), new JetStreamPublisher(nc, silent), silent).loadImage();
}

describe('unlink a wrong link', () => {
  const nats = useNatsServer('each');

  it('retracts what came through the identifier, buffers it again (expiring what is too old), flushes it to the right user, and a replay reproduces it', async () => {
    const { nc } = nats;
    const engine = await EngineService.start({ nc, config, settings: loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '3' }), logger: silent });
    const wrongLink: XrefEvent[] = [
      ev('e1', { cookie: 'shared' }, { minute: 0 }),
      ev('e2', { cookie: 'shared' }, { minute: 50 }),
      ev('e3', { user_id: 'wrong', cookie: 'shared' }, { minute: 51 }), // the wrong link: flushes e1, e2
      ev('e4', { cookie: 'shared' }, { minute: 52 }),
      ev('e5', { user_id: 'wrong', cookie: 'own' }, { minute: 100 }),
    ];
    await publishEvents(nc, wrongLink);
    await waitFor('the wrong link', () => engine.seq >= wrongLink.length);
    expect(await subjectsOf(nc)).toEqual({ wrong: ['e1', 'e2', 'e3', 'e4', 'e5'] });

    const { request } = await requestUnlink(nc, { kind: 'cookie', value: 'shared', by: 'test' });
    await waitFor('the unlink', () => engine.seq >= wrongLink.length + 1);
    // e3 carries the user's own id: it stays; e1 is older than the buffer's TTL at the unlink's watermark (minute 100)
    expect(await subjectsOf(nc)).toEqual({ wrong: ['e1', 'e2', 'e3', 'e4', 'e5', '-e1', '-e2', '-e4'] });
    const audit = await readStream<{ reason: string; request?: string; retracted?: number; found?: boolean }>(nc, 'XREF_AUDIT');
    expect(audit.filter((a) => a.data.reason === 'unlink').map((a) => a.data)).toMatchObject([{ request, found: true, retracted: 3 }]);
    const unmatched = await readStream<{ reason: string; event: { id: string } }>(nc, 'XREF_UNMATCHED');
    expect(unmatched.map((u) => [u.msgId, u.data.reason])).toEqual([['e1:unmatched:after-6', 'expired']]);

    await publishEvents(nc, [ev('e7', { user_id: 'right', cookie: 'shared' }, { minute: 101 })]);
    await waitFor('the right link', () => engine.seq >= wrongLink.length + 2);
    const groups = await subjectsOf(nc);
    expect(groups.right).toEqual(['e2', 'e4', 'e7']);
    const right = (await readStream<Group>(nc, 'XREF_GROUPS')).filter((m) => m.data.user.id === 'right').map((m) => m.msgId);
    expect(right).toEqual(['e2:user_id.right:after-6', 'e4:user_id.right:after-6', 'e7:user_id.right']);
    await engine.stop();

    const live = await liveImage(nc);
    expect(compareStates(live, (await replayLog({ nc, natsUrl: nats.server.url, config, logger: silent })).image)).toEqual([]);
    const before = (await readStream(nc, 'XREF_GROUPS')).map((m) => m.msgId);
    const unmatchedBefore = (await readStream(nc, 'XREF_UNMATCHED')).map((m) => m.msgId);
    await replayLog({ nc, natsUrl: nats.server.url, config, logger: silent, republish: true });
    expect((await readStream(nc, 'XREF_GROUPS')).map((m) => m.msgId)).toEqual(before);
    expect((await readStream(nc, 'XREF_UNMATCHED')).map((m) => m.msgId)).toEqual(unmatchedBefore);
  });

  it('--block refuses later links of the identifier to the same user, audited, also after a restart; another user may take it', async () => {
    const { nc } = nats;
    const settings = loadSettings({ NATS_URL: nats.server.url, XREF_CHECKPOINT_EVERY: '1' });
    let engine = await EngineService.start({ nc, config, settings, logger: silent });
    await publishEvents(nc, [ev('b1', { user_id: 'wrong', cookie: 'ck-b' }, { minute: 0 })]);
    await requestUnlink(nc, { kind: 'cookie', value: 'ck-b', block: true, by: 'test' });
    await waitFor('the unlink', () => engine.seq >= 2);
    await engine.stop();
    engine = await EngineService.start({ nc, config, settings, logger: silent });
    await publishEvents(nc, [ev('b2', { user_id: 'wrong', cookie: 'ck-b' }, { minute: 1 }), ev('b3', { cookie: 'ck-b' }, { minute: 2 }), ev('b4', { user_id: 'other', cookie: 'ck-b' }, { minute: 3 })]);
    await waitFor('the new events', () => engine.seq >= 5);
    await engine.stop();
    const audit = await readStream<{ reason: string; cause?: string; identifier?: { value: string }; user?: { id: string } }>(nc, 'XREF_AUDIT');
    expect(audit.filter((a) => a.data.reason === 'refused').map((a) => a.data)).toMatchObject([{ cause: 'blocked', identifier: { value: 'ck-b' }, user: { id: 'wrong' } }]);
    expect(await subjectsOf(nc)).toEqual({ wrong: ['b1', 'b2'], other: ['b3', 'b4'] });
    expect(compareStates(await liveImage(nc), (await replayLog({ nc, natsUrl: nats.server.url, config, logger: silent })).image)).toEqual([]);
  });
});
