import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { XrefError } from '../domain/errors.ts';
import { RingQueue } from '../ring-queue.ts';
import type { OutputHeader } from '../runtime/durable-consumer.ts';
import { HEADERS } from './subjects.ts';

export interface PublishAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

/**
 * Called once: with the ack, or with the error that refused the message for good, and the token
 * given with the message (so a hot path can pass one callback instead of a closure per message).
 */
export type PublishCallback<T = undefined> = (error: Error | undefined, ack: PublishAck | undefined, token: T) => void;

interface Waiting {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string;
  /** Stored only if the subject's last message is this one (compare-and-set); undefined: always. */
  readonly expect?: number;
  /** One more header, e.g. what the projection reads of a resolved event (`HEADERS.resolution`). */
  readonly header?: OutputHeader;
  readonly done: PublishCallback<unknown>;
  readonly token: unknown;
  sentAt: number;
  attempts: number;
}

/** JetStream refused the message for good (not a timeout or an outage, which are retried). */
export class PublishRejectedError extends XrefError {
  constructor(
    readonly subject: string,
    /** JetStream's own error code (e.g. 10071: another last sequence than expected). */
    readonly apiCode: number,
    message: string,
  ) {
    super('XREF_PUBLISH_REFUSED', `JetStream refused a message on ${subject}: ${message} (code ${apiCode})`);
  }
}

/** Buffer.from: several times cheaper than TextEncoder for short strings. */
function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data) : data;
}

/** Characters a header value cannot hold as they are: CR and LF, `%` (the escape), and spaces at either end (trimmed). */
const UNSAFE_IN_HEADER = /[%\r\n]|^\s|\s$/;

/**
 * The `Nats-Msg-Id` value for a message id: the id itself when it is safe in a header, else with
 * every unsafe character as `%` and four hex digits. One-to-one, so distinct ids never collide in
 * the streams' duplicate window.
 */
export function msgIdHeaderValue(id: string): string {
  if (!UNSAFE_IN_HEADER.test(id)) return id;
  const escape = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  return id.replace(/[%\r\n]/g, escape).replace(/^\s+|\s+$/g, (run) => [...run].map(escape).join(''));
}

/**
 * Pipelined JetStream publishing: plain publishes with a `Nats-Msg-Id` and a reply subject on one
 * shared inbox, acks parsed here (several times cheaper than one request per message). Nothing is
 * awaited one by one. A message without an ack in time, or refused because JetStream is not ready
 * (an outage, a restart), is sent again with the same id until it is stored: the stream's
 * duplicate window makes that exactly one message.
 */
export class JetStreamPublisher {
  private readonly inbox = createInbox();
  /**
   * Messages awaiting their ack, by id: the one at position i has id `firstWaitingId + i` (ids
   * are given in order, one per send); acked ones stay as holes until they reach the front.
   */
  private readonly waiting = new RingQueue<Waiting | undefined>();
  private firstWaitingId = 1;
  private readonly subscription: Subscription;
  private readonly timer: NodeJS.Timeout;
  private readonly idle: Array<{ count: number; resolve: () => void }> = [];
  /**
   * The headers of the message being published, encoded once here: the client only calls
   * `encode()` on them while publishing, and building its header object per message (key
   * canonicalisation, validation, a TextEncoder pass) cost more than the rest of the publish.
   */
  private readonly header = { bytes: new Uint8Array(0), encode() { return this.bytes; } };
  /** Messages stored in the last `retainMs`, oldest first, sent again after a reconnect. */
  private recent = new RingQueue<{ at: number; subject: string; data: Uint8Array; msgId: string; expect: number | undefined; header: OutputHeader | undefined }>();
  private disconnected = false;
  /** While disconnected: resolves at the reconnect. */
  private reconnected: { promise: Promise<void>; resolve: () => void } | undefined;
  /** After a reconnect: resolves once what was sent again is stored (or refused). */
  private resending: Promise<unknown> | undefined;
  /** Published and not yet acked or refused, retries included. */
  private outstanding = 0;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
    private readonly timeoutMs = 4000,
    /**
     * Stored messages kept to be sent again after a reconnect: the last `count`, and all of the last
     * `ms`. A killed server loses only what its file store had not written out yet (it writes within
     * milliseconds), so a quarter of a second covers that many times over, while keeping more would
     * hold every recent message past a young-generation collection or two.
     */
    private readonly retain = { ms: 250, count: 1000 },
  ) {
    this.subscription = nc.subscribe(`${this.inbox}.*`, { callback: (_error, msg) => this.onAck(msg) });
    this.timer = setInterval(() => this.retryLate(), Math.min(500, timeoutMs));
    this.timer.unref();
    if (retain.ms > 0 || retain.count > 0) void this.watchReconnects();
  }

  /**
   * A server killed hard can lose messages it acked but had not written out yet. After every
   * reconnect, what was stored just before the disconnect (the last `retain.count` messages and
   * all of the last `retain.ms`) is sent again, same ids and same order: what survived is dropped
   * as a duplicate, what was lost is stored again.
   */
  private async watchReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (this.closed) return;
      if (status.type === 'disconnect' && !this.disconnected) {
        this.disconnected = true;
        let resolve = () => {};
        const promise = new Promise<void>((r) => (resolve = r));
        this.reconnected = { promise, resolve };
      }
      if (status.type !== 'reconnect') continue;
      this.disconnected = false;
      const again = this.recent;
      this.recent = new RingQueue();
      if (again.length > 0) this.logger.info({ messages: again.length }, 'reconnected: sending the last stored messages again');
      const resent: Promise<unknown>[] = [];
      for (const m of again) resent.push(this.publish(m.subject, m.data, m.msgId, m.expect, m.header).catch(() => undefined));
      this.sendWaitingAgain();
      const resending = Promise.all(resent).then(() => {
        if (this.resending === resending) this.resending = undefined;
      });
      this.resending = resending;
      this.reconnected?.resolve();
      this.reconnected = undefined;
    }
  }

  private remember(waiting: Waiting): void {
    if (this.retain.ms <= 0 && this.retain.count <= 0) return;
    const now = Date.now();
    this.recent.push({ at: now, subject: waiting.subject, data: waiting.data, msgId: waiting.msgId, expect: waiting.expect, header: waiting.header });
    if (this.disconnected) return; // keep everything from before the outage
    while (this.recent.length > this.retain.count && this.recent.peek()!.at < now - this.retain.ms) this.recent.shift();
  }

  /**
   * Resolves once connected and what the last reconnect sent again is stored. A writer whose
   * messages must land after those (a checkpoint rewriting keys an earlier one wrote) waits for
   * it: messages published while disconnected would be sent first at the reconnect, before them.
   */
  async settled(): Promise<void> {
    for (;;) {
      if (this.reconnected !== undefined) await this.reconnected.promise;
      else if (this.resending !== undefined) await this.resending;
      else return;
    }
  }

  get pending(): number {
    return this.outstanding;
  }

  /**
   * Publishes until stored; with `expectLastSeq`, only if the subject's last message in the stream
   * is at that sequence (0: none), else rejected with a PublishRejectedError (compare-and-set).
   */
  publish(subject: string, data: Uint8Array | string, msgId: string, expectLastSeq?: number, header?: OutputHeader): Promise<PublishAck> {
    return new Promise((resolve, reject) => {
      const done: PublishCallback = (error, ack) => (error ? reject(error) : resolve(ack!));
      this.enqueue({ subject, data: toBytes(data), msgId, expect: expectLastSeq, header, done: done as PublishCallback<unknown>, token: undefined, sentAt: 0, attempts: 0 });
    });
  }

  /** `publish` without a promise per message, for hot paths: `done` is called once, with `token`. */
  publishThen<T>(subject: string, data: Uint8Array | string, msgId: string, done: PublishCallback<T>, token: T, header?: OutputHeader): void {
    this.enqueue({ subject, data: toBytes(data), msgId, header, done: done as PublishCallback<unknown>, token, sentAt: 0, attempts: 0 });
  }

  private enqueue(waiting: Waiting): void {
    if (this.closed) {
      waiting.done(new XrefError('XREF_CLOSED', 'the publisher closed before this message was sent'), undefined, waiting.token);
      return;
    }
    this.outstanding++;
    this.send(waiting);
  }

  private finish(waiting: Waiting, error: Error | undefined, ack?: PublishAck): void {
    this.outstanding--;
    waiting.done(error, ack, waiting.token);
    this.settleIdle();
  }

  /** Resolves once every message published so far is acked. */
  flushed(): Promise<void> {
    return this.below(1);
  }

  /** Resolves once fewer than `count` messages await their acks (backpressure without stop-and-go). */
  below(count: number): Promise<void> {
    if (this.outstanding < count) return Promise.resolve();
    return new Promise((resolve) => this.idle.push({ count, resolve }));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.subscription.unsubscribe();
    const left = [...this.waiting];
    this.firstWaitingId += this.waiting.length;
    this.waiting.clear();
    for (const waiting of left) if (waiting !== undefined) this.finish(waiting, new XrefError('XREF_CLOSED', 'the publisher closed before the message was acked'));
  }

  private send(waiting: Waiting): void {
    const id = this.firstWaitingId + this.waiting.length;
    waiting.sentAt = Date.now();
    waiting.attempts++;
    this.waiting.push(waiting);
    const expect = waiting.expect === undefined ? '' : `${HEADERS.expectedLastSubjectSequence}: ${waiting.expect}\r\n`;
    const extra = waiting.header === undefined ? '' : `${waiting.header.name}: ${waiting.header.value}\r\n`;
    this.header.bytes = Buffer.from(`NATS/1.0\r\n${HEADERS.msgId}: ${msgIdHeaderValue(waiting.msgId)}\r\n${expect}${extra}\r\n`);
    try {
      this.nc.publish(waiting.subject, waiting.data, { reply: `${this.inbox}.${id}`, headers: this.header as unknown as MsgHdrs });
    } catch (error) {
      // closed or draining connection: the sweep retries it, or close() rejects it
      this.logger.debug({ err: error, subject: waiting.subject }, 'publish failed, will retry');
    }
  }

  private onAck(msg: Msg): void {
    const waiting = this.takeWaiting(Number(msg.subject.slice(this.inbox.length + 1)));
    if (waiting === undefined) return; // late ack of a message already sent again
    if (msg.data.length === 0) {
      // a status reply (503: no stream bound yet, e.g. JetStream restarting): try again
      this.retryLater(waiting, `status ${msg.headers?.code ?? '?'}`);
      return;
    }
    const ack = msg.json<{ stream: string; seq: number; duplicate?: boolean; error?: { code: number; err_code: number; description: string } }>();
    if (ack.error !== undefined) {
      if (ack.error.code >= 500) this.retryLater(waiting, ack.error.description);
      else this.finish(waiting, new PublishRejectedError(waiting.subject, ack.error.err_code, ack.error.description));
    } else {
      this.remember(waiting);
      this.finish(waiting, undefined, { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true });
    }
  }

  private retryLater(waiting: Waiting, why: string): void {
    if (waiting.attempts % 20 === 1) this.logger.warn({ subject: waiting.subject, attempts: waiting.attempts, why }, 'publish not stored yet, retrying');
    setTimeout(() => (this.closed ? this.finish(waiting, new XrefError('XREF_CLOSED', 'the publisher closed before the message was sent again')) : this.send(waiting)), Math.min(2000, 50 * waiting.attempts)).unref();
  }

  /** Takes the message sent with `id`, if it still awaits its ack. */
  private takeWaiting(id: number): Waiting | undefined {
    const waiting = this.waiting.at(id - this.firstWaitingId);
    if (waiting === undefined) return undefined;
    this.waiting.set(id - this.firstWaitingId, undefined);
    while (this.waiting.length > 0 && this.waiting.peek() === undefined) {
      this.waiting.shift();
      this.firstWaitingId++;
    }
    return waiting;
  }

  /**
   * Every message still awaiting its ack goes again, same id, in order (after a reconnect: a dead
   * server never answers what it had taken, and waiting out the ack timeout would stall intake).
   */
  private sendWaitingAgain(): void {
    const again: Waiting[] = [];
    for (let id = this.firstWaitingId; id < this.firstWaitingId + this.waiting.length; id++) {
      const waiting = this.waiting.at(id - this.firstWaitingId);
      if (waiting !== undefined) again.push(waiting);
    }
    this.firstWaitingId += this.waiting.length;
    this.waiting.clear();
    for (const waiting of again) this.send(waiting);
  }

  /** Messages without an ack in time go again, same id. */
  private retryLate(): void {
    const late = Date.now() - this.timeoutMs;
    for (let id = this.firstWaitingId; id < this.firstWaitingId + this.waiting.length; id++) {
      const waiting = this.waiting.at(id - this.firstWaitingId);
      if (waiting === undefined) continue;
      if (waiting.sentAt > late) break; // send order
      this.takeWaiting(id);
      this.retryLater(waiting, 'no ack in time');
    }
  }

  private settleIdle(): void {
    if (this.idle.length === 0) return;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const waiter = this.idle[i]!;
      if (this.outstanding < waiter.count) {
        this.idle.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}
