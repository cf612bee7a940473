import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { logger } from '../../src/log.ts';

const decoder = new TextDecoder();

/** Every message of a stream, in order, parsed as JSON, with its subject and Nats-Msg-Id. */
export async function readStream<T = unknown>(nc: NatsConnection, stream: string): Promise<Array<{ subject: string; msgId: string | undefined; data: T }>> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(stream);
  const out: Array<{ subject: string; msgId: string | undefined; data: T }> = [];
  if (state.messages === 0) return out;
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  for await (const msg of (await consumer.consume({ max_messages: 2000 })) as AsyncIterable<JsMsg>) {
    out.push({ subject: msg.subject, msgId: msg.headers?.get('Nats-Msg-Id'), data: JSON.parse(decoder.decode(msg.data)) as T });
    if (msg.seq >= state.last_seq || msg.info.pending === 0) break;
  }
  return out;
}

/** Publishes events to `xref.in.<source>` pipelined, dedup id = event id; resolves when all are stored. */
export async function publishEvents(nc: NatsConnection, events: readonly XrefEvent[], source = 'test'): Promise<void> {
  await ensureTopology(nc, await jetstreamManager(nc), logger.child({ component: 'test-topology' }));
  const publisher = new JetStreamPublisher(nc, logger.child({ component: 'test-publisher' }));
  await Promise.all(events.map((event) => publisher.publish(`xref.in.${source}`, JSON.stringify(event), event.id)));
  await publisher.close();
}

/** Polls `check` until it is true, or fails with `what` after `ms`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A resolved event on XREF_GROUPS, as the engine publishes it. */
export interface GroupMessage {
  seq: number;
  user: { kind: string; id: string };
  via: { kind: string; value: string };
  event: XrefEvent;
}

type Stored<T> = { subject: string; msgId: string | undefined; data: T };

/** The messages of XREF_GROUPS that reached one user. */
export function ofUser(groups: Array<Stored<GroupMessage>>, kind: string, id: string): Array<Stored<GroupMessage>> {
  return groups.filter((m) => m.data.user.kind === kind && m.data.user.id === id);
}

/** What `pick` gives of each event that reached its user through the identifier `kind`/`value`, sorted. */
export function eventsVia(messages: Array<Stored<GroupMessage>>, kind: string, value: string, pick: (event: XrefEvent) => string | undefined): Array<string | undefined> {
  return messages
    .filter((m) => m.data.via.kind === kind && m.data.via.value === value)
    .map((m) => pick(m.data.event))
    .sort();
}

/** user → via → sorted event ids, from XREF_GROUPS payloads or from a groups document. */
export function groupsFromMessages(messages: Array<{ data: { user: { kind: string; id: string }; via: { kind: string; value: string }; event: { id: string } } }>) {
  const out: Record<string, Record<string, string[]>> = {};
  for (const { data } of messages) {
    ((out[`${data.user.kind}:${data.user.id}`] ??= {})[`${data.via.kind}:${data.via.value}`] ??= []).push(data.event.id);
  }
  return sortLists(out);
}

export function sortLists(doc: Record<string, Record<string, string[]>>) {
  for (const vias of Object.values(doc)) for (const list of Object.values(vias)) list.sort();
  return doc;
}
