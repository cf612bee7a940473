import { AckPolicy, DeliverPolicy, type ConsumerMessages, JetStreamApiError, type JetStreamClient, type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config, ServiceSettings } from '../domain/config.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import { IdentityEngine, type Touched, checkpointSize } from '../engine/engine.ts';
import { readLog } from '../nats/log-reader.ts';
import { JetStreamPublisher } from '../nats/publisher.ts';
import { NatsWaits, untilAnswered } from '../nats/retry.ts';
import type { Lease } from '../nats/lease.ts';
import { FencedError, KvSnapshotStore, NatsStateStore } from '../nats/state-store.ts';
import { STREAMS, subjects } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import { RingQueue } from '../ring-queue.ts';
import { type InputMessage, decodeInput, deliveredInput, fetchedInput } from './input.ts';
import { type OutboundMessage, messageSink } from './outputs.ts';

export const ENGINE_CONSUMER = 'xref-engine';

/** Whether a consumer of XREF_IN is an engine's (`xref-engine`, or `xref-engine-<epoch>` under a lease). */
export function isEngineConsumer(name: string): boolean {
  return name === ENGINE_CONSUMER || name.startsWith(`${ENGINE_CONSUMER}-`);
}
/** Queued inputs scanned when actors must come back from KV. */
const LOOK_AHEAD = 500;
/**
 * The longest the engine applies inputs in one go before it lets the event loop run (checked
 * every 32 inputs). Until it does, no ack can be read, so every input applied in the run stays in
 * flight: a backlog applied in one long run kept thousands of messages alive through young
 * collections, which promoted them to the old generation and brought the next major collection,
 * and its pause, closer.
 */
const TURN_MS = 8;
const CONSUMER_NOT_FOUND = 10014;
const decoder = new TextDecoder();

/** An applied input waiting for its outputs to be stored. */
interface InFlight {
  readonly msg: InputMessage;
  /** Outputs not stored yet. */
  left: number;
  /** An output was refused: the input stays unacked, so no checkpoint passes it. */
  refused: boolean;
}

export interface EngineServiceOptions {
  readonly nc: NatsConnection;
  readonly config: Config;
  readonly settings: ServiceSettings;
  readonly logger: Logger;
  readonly limits?: Limits;
  /**
   * Called once if processing stops for good (a failure that is not an outage: NATS refusing a
   * message, a bug). An outage never gets here: the engine waits for NATS and goes on.
   */
  readonly onFailure?: (error: Error) => void;
  /**
   * The engine lease this engine runs under: it applies inputs and writes its state only while
   * the lease is valid. None: nothing else is checked (one engine per log is the caller's care).
   */
  readonly lease?: Lease;
  /** Called once when the engine stops because it lost its lease (it applies nothing more). */
  readonly onFenced?: (why: string) => void;
}

export interface EngineServiceStats {
  inputs: number;
  rejected: number;
  outputs: number;
  checkpoints: number;
  lastCheckpointSeq: number;
}

/**
 * The streaming engine: consumes XREF_IN with a durable pull consumer, applies each input in log
 * order, publishes what it decides (pipelined, deterministic ids) and acks an input only once all
 * its outputs are stored. Checkpoints every N inputs / T ms and at shutdown; a restart resumes
 * right after the last checkpoint, and re-published outputs are dropped by JetStream's dedup.
 */
export class EngineService {
  readonly stats: EngineServiceStats = { inputs: 0, rejected: 0, outputs: 0, checkpoints: 0, lastCheckpointSeq: 0 };
  private readonly queue = new RingQueue<JsMsg>();
  private messages: ConsumerMessages | undefined;
  private pumping: Promise<void> | undefined;
  private sinceCheckpoint = 0;
  private checkpointDue = false;
  /**
   * Applied inputs not acked yet, in log order. The consumer acks all up to the one acked
   * (AckPolicy.All): one ack covers every input whose outputs are all stored.
   */
  private readonly inFlight = new RingQueue<InFlight>();
  /** The input to ack once the acks being read now are all processed (one ack per batch). */
  private ackDue: InputMessage | undefined;
  /** Checkpoints waiting for every input up to their sequence to be stored. */
  private readonly storedWaiters: Array<{ seq: number; resolve: () => void }> = [];
  /** The checkpoint being written in the background, if any. */
  private writing: Promise<void> | undefined;
  private stopping = false;
  private failure: Error | undefined;
  /** Why the engine stopped applying inputs: its lease was lost. */
  private fenced: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly limits: Limits;

  private constructor(
    private readonly options: EngineServiceOptions,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
    private readonly state: NatsStateStore,
    private readonly engine: IdentityEngine,
    private readonly stores: { identifiers: KvSnapshotStore; users: KvSnapshotStore },
    /** What the engine decided for the input being applied, waiting to be published. */
    private readonly outbox: OutboundMessage[],
    /** Calls to NATS waiting for it to answer again (an outage): readiness and metrics show them. */
    readonly waits: NatsWaits,
  ) {
    this.limits = options.limits ?? defaultLimits();
    this.timer = setInterval(() => this.requestCheckpoint(), options.settings.checkpointMs);
    this.timer.unref();
  }

  /**
   * Applies the topology, loads the last checkpoint and starts consuming right after it. NATS
   * away or not answering at any step makes it wait and start again from the top, however long
   * that takes; only a refusal (or a bug) rejects.
   */
  static async start(options: EngineServiceOptions): Promise<EngineService> {
    const { nc, logger } = options;
    const waits = new NatsWaits(nc);
    const publisher = new JetStreamPublisher(nc, logger.child({ component: 'publisher' }));
    const state = new NatsStateStore(nc, jetstream(nc), publisher, logger.child({ component: 'state' }), { logger, waits });
    return untilAnswered(
      'starting',
      async () => {
        // what an earlier attempt sent (repairs) is stored before the state is read again
        await publisher.flushed();
        return EngineService.startOnce(options, publisher, state, waits);
      },
      { logger, waits },
    );
  }

  private static async startOnce(options: EngineServiceOptions, publisher: JetStreamPublisher, state: NatsStateStore, waits: NatsWaits): Promise<EngineService> {
    const { nc, logger, settings } = options;
    state.epoch = options.lease?.epoch ?? 0;
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await ensureTopology(nc, jsm, logger);
    const started = Date.now();
    const loaded = await state.load();
    const seen: Array<[id: string, seq: number]> = [];
    if (loaded.seq > 0 && settings.dedupLookback > 0) {
      await readLog(js, jsm, Math.max(1, loaded.seq - settings.dedupLookback + 1), loaded.seq, (msg) => {
        try {
          const id = (JSON.parse(decoder.decode(msg.data)) as { id?: unknown }).id;
          if (typeof id === 'string') seen.push([id, msg.seq]);
        } catch {
          // a rejected input holds no id
        }
      });
    }
    const stores = {
      identifiers: new KvSnapshotStore('i', state, loaded.identifierAddresses),
      users: new KvSnapshotStore('u', state, loaded.userAddresses),
    };
    const outbox: OutboundMessage[] = [];
    const engine = new IdentityEngine({
      config: options.config,
      sink: messageSink((message) => outbox.push(message)),
      maxLiveActors: settings.maxLiveActors,
      dedupWindow: settings.dedupLookback,
      identifierStore: stores.identifiers,
      userStore: stores.users,
      resume: { seq: loaded.seq, watermark: loaded.watermark, links: loaded.links, clusters: loaded.clusters, seen },
    });
    logger.info(
      { seq: loaded.seq, links: loaded.links.size, buffering: loaded.identifierAddresses.length, dedupIds: seen.length, ms: Date.now() - started },
      'state loaded',
    );
    const service = new EngineService(options, js, jsm, publisher, state, engine, stores, outbox, waits);
    try {
      await service.consumeFrom(loaded.seq + 1);
    } catch (error) {
      clearInterval(service.timer);
      await service.messages?.close();
      throw error;
    }
    return service;
  }

  /** The last input applied. */
  get seq(): number {
    return this.engine.seq;
  }

  get engineSize() {
    return this.engine.size;
  }

  get engineStats() {
    return this.engine.stats;
  }

  /** Inputs in XREF_IN not yet applied. */
  async lag(): Promise<number> {
    const { state } = await this.jsm.streams.info(STREAMS.in);
    return Math.max(0, state.last_seq - this.engine.seq);
  }

  /** Stops pulling, finishes what was delivered, checkpoints, and lets go of the stream. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.timer);
    await this.messages?.close();
    await this.pumping;
    await this.writing;
    // after a failure, or once fenced, the state may be ahead of what is stored: the last checkpoint stands
    if (this.failure === undefined && this.fenced === undefined) {
      this.startCheckpoint();
      await this.writing;
    }
    await this.publisher.close();
    this.options.logger.debug({ seq: this.engine.seq, ...this.stats }, 'engine stopped');
  }

  /** A failure that stopped processing (e.g. the state could not be written), if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  private async consumeFrom(startSeq: number): Promise<void> {
    // The durable consumer always restarts right after the checkpoint: inputs acked after it are
    // applied again, and their outputs dropped by the streams' duplicate window.
    // the consumers of earlier engines go (a fenced one pulling again finds its own gone); never
    // by an engine that lost its lease
    if (this.options.lease !== undefined && !this.options.lease.valid()) throw new FencedError();
    for (const info of await this.jsm.consumers.list(STREAMS.in).next()) {
      if (!isEngineConsumer(info.name)) continue;
      try {
        await this.jsm.consumers.delete(STREAMS.in, info.name);
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw error;
      }
    }
    await this.jsm.consumers.add(STREAMS.in, {
      durable_name: this.consumerName,
      filter_subject: subjects.inAll,
      ack_policy: AckPolicy.All,
      ack_wait: nanos(60_000),
      max_ack_pending: this.options.settings.maxInFlight * 4,
      ...(startSeq <= 1 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }),
    });
    await this.subscribe();
  }

  /**
   * Starts pulling from the durable consumer. The client re-pulls by itself after a reconnect;
   * should the consumer be gone (a server that lost it) or the pull end, it is made again, right
   * after the last input applied, and pulled from anew.
   */
  private async subscribe(): Promise<void> {
    const consumer = await this.js.consumers.get(STREAMS.in, this.consumerName);
    const messages = await consumer.consume({
      max_messages: 2000,
      callback: (msg) => {
        this.queue.push(msg);
        this.pump();
      },
    });
    this.messages = messages;
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === 'consumer_not_found' && status.count >= 2) {
          this.options.logger.warn({ consumer: this.consumerName }, 'the engine consumer is gone from the server: making it again');
          await messages.close();
        }
      }
    })().catch(() => undefined);
    void messages.closed().then(() => {
      if (this.stopping || this.failure !== undefined || this.fenced !== undefined) return;
      untilAnswered('resubscribing', () => this.consumeFrom(Math.max(this.engine.seq, this.queuedSeq()) + 1), { logger: this.options.logger, waits: this.waits }).catch((error: Error) =>
        error instanceof FencedError ? this.fence(error.message) : this.fail(error, 'the engine consumer could not be made again'),
      );
    });
  }

  /**
   * This engine's durable consumer: `xref-engine`, and under a lease `xref-engine-<epoch>`, one per
   * holding, so that a fenced engine whose client pulls again cannot take inputs from the next.
   */
  private get consumerName(): string {
    const epoch = this.options.lease?.epoch ?? 0;
    return epoch === 0 ? ENGINE_CONSUMER : `${ENGINE_CONSUMER}-${epoch}`;
  }

  /** The last input delivered and waiting in the queue (0 when none). */
  private queuedSeq(): number {
    return this.queue.length === 0 ? 0 : deliveredInput(this.queue.at(this.queue.length - 1)!).seq;
  }

  /**
   * The lease is lost: nothing more is applied or written to the state (the publisher lets go of
   * what it still had to send), and `onFenced` is told (once). Outputs already sent are those the
   * next holder produces again, with the same ids.
   */
  fence(why: string): void {
    if (this.fenced !== undefined || this.stopping) return;
    this.fenced = why;
    this.options.logger.warn({ why }, 'fenced: this engine no longer holds the engine lease');
    void this.messages?.close();
    void this.publisher.close();
    this.options.onFenced?.(why);
  }

  /** Processing stops for good: logged, kept as `error`, and told to `onFailure` (once). */
  private fail(error: Error, message: string): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.options.logger.fatal({ err: error }, message);
    this.options.onFailure?.(error);
  }

  private requestCheckpoint(): void {
    this.checkpointDue = true;
    this.pump();
  }

  private pump(): void {
    if (this.pumping !== undefined || this.failure !== undefined || this.fenced !== undefined) return;
    this.pumping = this.drain()
      .catch((error: Error) => this.fail(error, 'engine stopped processing'))
      .finally(() => {
        this.pumping = undefined;
        if (this.failure === undefined && this.fenced === undefined && (this.queue.length > 0 || (this.checkpointDue && this.writing === undefined))) this.pump();
      });
  }

  private checkpointWanted(): boolean {
    return this.checkpointDue || this.sinceCheckpoint >= this.options.settings.checkpointEvery;
  }

  /**
   * Applies queued inputs synchronously, yielding when something must be awaited (a passivated
   * actor to load, backpressure) or after TURN_MS: the NATS client then writes a batch of
   * publishes at once instead of one socket write per input.
   */
  private async drain(): Promise<void> {
    let turnStart = performance.now();
    for (let applied = 1; ; applied++) {
      // one checkpoint at a time; one that is due while another is written starts once it is done
      if (this.options.lease !== undefined && !this.options.lease.valid()) return this.fence('the engine lease is not valid any more');
      if (this.writing === undefined && this.checkpointWanted()) this.startCheckpoint();
      const delivered = this.queue.shift();
      if (delivered === undefined) return;
      const msg = deliveredInput(delivered);
      // A server restarted with messages in flight to us counts them as delivered and sends newer
      // ones; the missing ones come back only after the ack wait. Inputs apply in log order, so
      // fetch what is missing by sequence first.
      if (msg.seq > this.engine.seq + 1) await this.fillGap(msg.seq);
      const wait = this.apply(msg);
      if (wait !== undefined) {
        await wait;
        turnStart = performance.now();
      } else if ((applied & 31) === 0 && performance.now() - turnStart > TURN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        turnStart = performance.now();
      }
    }
  }

  /** How calls to NATS in the engine's path wait out an outage. */
  private get retry() {
    return { logger: this.options.logger, waits: this.waits };
  }

  /** Applies the inputs between the last one applied and `nextSeq`, read from the stream by sequence. */
  private async fillGap(nextSeq: number): Promise<void> {
    const from = this.engine.seq + 1;
    this.options.logger.warn({ from, to: nextSeq - 1 }, 'inputs missing from the delivery: reading them from the stream');
    for (let seq = from; seq < nextSeq; seq++) {
      const stored = await untilAnswered('reading missing inputs', () => this.jsm.streams.getMessage(STREAMS.in, { seq }), { ...this.retry, idempotent: true });
      if (stored === null) {
        this.engine.skip(seq); // deleted from the stream: nothing to apply
        continue;
      }
      const wait = this.apply(fetchedInput(stored));
      if (wait !== undefined) await wait;
    }
  }

  /** Applies one input; returns a promise only when it has to wait. */
  private apply(msg: InputMessage): Promise<void> | undefined {
    const seq = msg.seq;
    if (seq <= this.engine.seq) {
      // delivered again, already in the state: acked now unless an earlier input is still in
      // flight (acking this one would ack that one too; its own ack will come)
      if (this.lowestInFlight() > seq) msg.ack();
      return undefined;
    }
    this.stats.inputs++;
    this.sinceCheckpoint++;
    const input = decodeInput(msg, this.limits);
    if ('rejected' in input) {
      this.stats.rejected++;
      this.engine.skip(seq);
      this.outbox.push(input.rejected);
      return this.publishOutputs(msg);
    }
    const touched = this.engine.touches(input.event, input.time);
    if (touched === undefined) {
      this.engine.ingest(input.event, seq, input.time);
      return this.publishOutputs(msg);
    }
    return this.loadThenIngest(touched, input.event, seq, input.time).then(() => this.publishOutputs(msg));
  }

  /**
   * Loads what the input touches, then applies it. While loads are awaited, a checkpoint may
   * finish and let go of the passivated snapshots it wrote, ready a moment ago (they are in KV
   * now): so the engine is asked again, and the input applied only once nothing is missing, in
   * the same turn as the last check.
   */
  private async loadThenIngest(touched: Touched, event: XrefEvent, seq: number, time: number | undefined): Promise<void> {
    for (let missing: Touched | undefined = touched; missing !== undefined; missing = this.engine.touches(event, time)) await this.loadAhead(missing);
    this.engine.ingest(event, seq, time);
  }

  /**
   * Loads, in one parallel batch, the passivated actors this input and the next queued ones will
   * touch, so that actors coming back from KV cost one round trip per batch, not one per input.
   * (The look-ahead is a guess made on the current state; what the input itself needs is always
   * loaded.)
   */
  private async loadAhead(needed: Touched): Promise<void> {
    const identifiers = new Set(needed.identifiers);
    const users = new Set(needed.users);
    const add = (touched: Touched | undefined) => {
      for (const address of touched?.identifiers ?? []) identifiers.add(address);
      for (const address of touched?.users ?? []) users.add(address);
    };
    for (let i = 0; i < Math.min(LOOK_AHEAD, this.queue.length); i++) {
      const input = decodeInput(deliveredInput(this.queue.at(i)!), this.limits);
      if (!('rejected' in input)) add(this.engine.touches(input.event, input.time));
    }
    await Promise.all([this.stores.identifiers.prefetch([...identifiers]), this.stores.users.prefetch([...users])]);
  }

  /** Publishes what the input decided, pipelined; the input is acked once all of it is stored. */
  private publishOutputs(msg: InputMessage): Promise<void> | undefined {
    const outbox = this.outbox;
    this.stats.outputs += outbox.length;
    const entry: InFlight = { msg, left: outbox.length, refused: false };
    this.inFlight.push(entry);
    if (outbox.length === 0) this.settleInFlight();
    for (const out of outbox) this.publisher.publishThen(out.subject, out.payload, out.msgId, this.outputStored, entry);
    outbox.length = 0;
    const limit = this.options.settings.maxInFlight;
    return this.publisher.pending >= limit ? this.publisher.below(limit / 2) : undefined;
  }

  private readonly outputStored = (error: Error | undefined, _ack: unknown, entry: InFlight): void => {
    if (error !== undefined) {
      if (!entry.refused && this.fenced === undefined) this.options.logger.error({ err: error, seq: entry.msg.seq }, 'an output was refused: the input stays unacked');
      entry.refused = true;
    }
    if (--entry.left === 0 && !entry.refused) this.settleInFlight();
  };

  /** Acks, with one ack, the inputs at the front whose outputs are all stored. */
  private settleInFlight(): void {
    let ackable: InputMessage | undefined;
    for (let entry = this.inFlight.peek(); entry !== undefined && entry.left === 0 && !entry.refused; entry = this.inFlight.peek()) {
      this.inFlight.shift();
      if (entry.msg.ackable) ackable = entry.msg;
    }
    if (ackable !== undefined) {
      if (this.ackDue === undefined) queueMicrotask(this.sendAck);
      this.ackDue = ackable;
    }
    this.wakeStoredWaiters();
  }

  private readonly sendAck = (): void => {
    this.ackDue?.ack();
    this.ackDue = undefined;
  };

  /** The lowest input whose outputs are not all stored (Infinity when none). */
  private lowestInFlight(): number {
    return this.inFlight.peek()?.msg.seq ?? Infinity;
  }

  /** Resolves once every input up to `seq` has all its outputs stored. */
  private storedThrough(seq: number): Promise<void> {
    return new Promise((resolve) => {
      this.storedWaiters.push({ seq, resolve });
      this.wakeStoredWaiters();
    });
  }

  private wakeStoredWaiters(): void {
    if (this.storedWaiters.length === 0) return;
    const lowest = this.lowestInFlight();
    for (let i = this.storedWaiters.length - 1; i >= 0; i--) {
      const waiter = this.storedWaiters[i]!;
      if (waiter.seq < lowest) {
        this.storedWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /**
   * Freezes what changed up to now (synchronously, so it is the state at this input) and writes
   * it in the background while processing goes on. The checkpoint's meta record is written only
   * once its records and every output of the inputs it covers are stored. One at a time.
   */
  private startCheckpoint(): void {
    this.checkpointDue = false;
    this.sinceCheckpoint = 0;
    if (this.options.settings.passivateAfterMs >= 0) this.engine.passivateIdle(this.options.settings.passivateAfterMs);
    const checkpoint = this.engine.checkpoint();
    if (checkpoint.seq === this.stats.lastCheckpointSeq && checkpointSize(checkpoint) === 0) return;
    this.writing = this.state
      .write(checkpoint, {
        alsoStored: this.storedThrough(checkpoint.seq),
        // spread over half the time to the next one while intake goes on; at shutdown, at once
        spreadOverMs: () => (this.stopping ? 0 : this.options.settings.checkpointMs / 2),
        mayWrite: () => this.fenced === undefined && (this.options.lease?.valid() ?? true),
      })
      .then(() => {
        this.stores.identifiers.written(checkpoint.identifiers);
        this.stores.users.written(checkpoint.users);
        this.stats.checkpoints++;
        this.stats.lastCheckpointSeq = checkpoint.seq;
        this.options.logger.debug({ seq: checkpoint.seq, links: checkpoint.links.size, actors: checkpoint.identifiers.length + checkpoint.users.length }, 'checkpoint');
      })
      .catch((error: Error) => {
        // once fenced, what was not written stays unwritten: the next holder has the log
        if (this.fenced !== undefined || error instanceof FencedError) this.fence(error.message);
        else this.fail(error, 'a checkpoint could not be written: stopping');
      })
      .finally(() => {
        this.writing = undefined;
        if (!this.stopping && this.checkpointWanted()) this.pump();
      });
  }
}
