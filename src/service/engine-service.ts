import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.ts';
import type { Settings } from '../settings.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { ErrorBudget } from '../domain/error-budget.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import { type Checkpoint, IdentityEngine, type Touched, checkpointSize } from '../engine/engine.ts';
import { JetStreamInputLog } from '../nats/jetstream-input-log.ts';
import type { Lease } from '../nats/lease.ts';
import { readLog } from '../nats/log-reader.ts';
import { JetStreamPublisher } from '../nats/publisher.ts';
import { NatsWaits, untilAnswered } from '../nats/retry.ts';
import { FencedError } from '../engine/state-store.ts';
import { KvSnapshotStore, NatsStateStore } from '../nats/state-store.ts';
import { CONSUMERS, isDurableOf } from '../nats/subjects.ts';
import { ensureTopology } from '../nats/topology.ts';
import { DurableConsumer, type InputHandler } from '../runtime/durable-consumer.ts';
import { type InputMessage, type QueuedInputs, StoredInput } from '../runtime/input-log.ts';
import type { ControlCommand } from '../domain/control.ts';
import type { Erasure } from '../engine/outputs.ts';
import { controlId } from '../engine/records.ts';
import { appliedHashes } from '../nats/control-store.ts';
import { ControlEffects } from './control-effects.ts';
import { type DecodedInput, inputDecoder } from './input.ts';
import { type OutboundMessage, controlMessage, messageSink } from './outputs.ts';

export const ENGINE_CONSUMER = CONSUMERS.engine;

/** Whether a consumer of XREF_IN is an engine's (`xref-engine`, or `xref-engine-<epoch>` under a lease). */
export function isEngineConsumer(name: string): boolean {
  return isDurableOf(ENGINE_CONSUMER, name);
}
/** No queued inputs to look ahead at. */
const NOTHING_AHEAD: QueuedInputs = { queued: 0, peek: () => undefined };
/** Queued inputs scanned when actors must come back from KV. */
const LOOK_AHEAD = 500;

export interface EngineServiceOptions {
  readonly nc: NatsConnection;
  readonly config: Config;
  readonly settings: Settings;
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
  /** Inputs refused (not events, or refused by the payload rules): each an error record, kept in full or only counted. */
  rejected: number;
  /** Refused inputs by reason (`schema_violation`, `invalid_event`, …), since start. */
  readonly errorsBy: Record<string, number>;
  /** Of those, the ones whose record was not published (more than XREF_ERRORS_PER_SECOND of a reason in one second). */
  readonly errorsDroppedBy: Record<string, number>;
  outputs: number;
  checkpoints: number;
  lastCheckpointSeq: number;
}

type SnapshotStores = { identifiers: KvSnapshotStore; users: KvSnapshotStore };
type Decode = (msg: InputMessage) => DecodedInput;

/**
 * The streaming engine: one consumer of XREF_IN on the durable-consumer runtime (src/runtime),
 * which applies each input in log order, publishes what the engine decides and acks an input only
 * once all its outputs are stored, and checkpoints every N inputs / T ms and at shutdown. What is
 * the engine's own: loading its state, the dedup window read back from the log, decoding inputs
 * and bringing passivated actors back from KV before they are applied, and its checkpoints.
 */
export class EngineService {
  readonly stats: EngineServiceStats;
  private readonly consumer: DurableConsumer<Checkpoint>;

  private constructor(
    private readonly options: EngineServiceOptions,
    private readonly log: JetStreamInputLog,
    publisher: JetStreamPublisher,
    state: NatsStateStore,
    private readonly engine: IdentityEngine,
    private readonly stores: SnapshotStores,
    decode: Decode,
    /** What the engine decided for the input being applied, waiting to be published. */
    outbox: OutboundMessage[],
    /** The forgets the engine applies, as they are handed over by its sink. */
    erasures: Erasure[],
    private readonly effects: ControlEffects,
    /** Calls to NATS waiting for it to answer again (an outage): readiness and metrics show them. */
    readonly waits: NatsWaits,
  ) {
    const { settings, logger } = options;
    const budget = new ErrorBudget(settings.errorsPerSecond);
    this.stats = { inputs: 0, rejected: 0, errorsBy: budget.total, errorsDroppedBy: budget.dropped, outputs: 0, checkpoints: 0, lastCheckpointSeq: 0 };
    this.consumer = new DurableConsumer<Checkpoint>({
      name: ENGINE_CONSUMER,
      log,
      // a forget's buckets are purged once a checkpoint past it is written: soon, then
      handler: new EngineInputs(engine, stores, outbox, erasures, effects, () => this.consumer.checkpointSoon(), decode, budget, this.stats),
      publisher,
      maxInFlight: settings.maxInFlight,
      checkpoints: {
        every: settings.checkpointEvery,
        ms: settings.checkpointMs,
        take: () => this.takeCheckpoint(),
        writer: state,
        written: (checkpoint) => this.checkpointWritten(checkpoint),
        isFenced: (error) => error instanceof FencedError,
      },
      lease: options.lease,
      logger,
      stats: this.stats,
      onFailure: options.onFailure,
      onFenced: options.onFenced,
    });
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
    const decode = inputDecoder(options.config, options.limits ?? defaultLimits());
    const seen: Array<[id: string, seq: number]> = [];
    if (loaded.seq > 0 && settings.dedupLookback > 0) {
      await readLog(js, jsm, Math.max(1, loaded.seq - settings.dedupLookback + 1), loaded.seq, (msg) => {
        // decoded as when it was applied: a refused input's id never entered the window
        const input = decode(new StoredInput(msg.seq, msg.subject, msg.data, Number(msg.timestampNanos / 1_000_000n)));
        if ('event' in input) seen.push([input.event.id, msg.seq]);
      });
    }
    const stores = {
      identifiers: new KvSnapshotStore('i', state, loaded.identifierAddresses),
      users: new KvSnapshotStore('u', state, loaded.userAddresses),
    };
    const outbox: OutboundMessage[] = [];
    const erasures: Erasure[] = [];
    let service: EngineService | undefined;
    const effects = await ControlEffects.open(nc, js, jsm, publisher, logger.child({ component: 'control' }));
    const { suppressed, blocked } = await effects.resume(loaded.seq);
    const engine: IdentityEngine = new IdentityEngine({
      config: options.config,
      sink: messageSink(
        (message) => outbox.push(message),
        (): number => engine.seq,
        (erasure) => erasures.push(erasure),
        // undefined while the engine is made (it decides nothing before its consumer runs)
        (): number | undefined => service?.consumer.storedBelow(engine.seq),
      ),
      hasher: effects.hasher,
      maxLiveActors: settings.maxLiveActors,
      dedupWindow: settings.dedupLookback,
      identifierStore: stores.identifiers,
      userStore: stores.users,
      resume: { seq: loaded.seq, watermark: loaded.watermark, links: loaded.links, clusters: loaded.clusters, seen, suppressed, blocked },
    });
    logger.info(
      { seq: loaded.seq, links: loaded.links.size, buffering: loaded.identifierAddresses.length, dedupIds: seen.length, ms: Date.now() - started },
      'state loaded',
    );
    // the durable consumer always restarts right after the checkpoint: inputs acked after it are
    // applied again, and their outputs dropped by the streams' duplicate window
    const log = new JetStreamInputLog({ js, jsm, logger, waits, maxAckPending: settings.maxInFlight * 4 });
    service = new EngineService(options, log, publisher, state, engine, stores, decode, outbox, erasures, effects, waits);
    await service.consumer.start(loaded.seq + 1);
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
    return Math.max(0, (await this.log.lastSeq()) - this.engine.seq);
  }

  /** Stops pulling, finishes what was delivered, checkpoints, and lets go of the stream. */
  async stop(): Promise<void> {
    await this.consumer.stop();
    await this.effects.settled();
    this.options.logger.debug({ seq: this.engine.seq, ...this.stats }, 'engine stopped');
  }

  /** A failure that stopped processing (e.g. the state could not be written), if any. */
  get error(): Error | undefined {
    return this.consumer.error;
  }

  /**
   * The lease is lost: nothing more is applied or written to the state (the publisher lets go of
   * what it still had to send), and `onFenced` is told (once). Outputs already sent are those the
   * next holder produces again, with the same ids.
   */
  fence(why: string): void {
    this.consumer.fence(why);
  }

  /**
   * Freezes what changed up to now (synchronously, so it is the state at this input), passivating
   * idle actors first; nothing when nothing changed since the last one written.
   */
  private takeCheckpoint(): Checkpoint | undefined {
    if (this.options.settings.passivateAfterMs >= 0) this.engine.passivateIdle(this.options.settings.passivateAfterMs);
    const checkpoint = this.engine.checkpoint();
    if (checkpoint.seq === this.stats.lastCheckpointSeq && checkpointSize(checkpoint) === 0) return undefined;
    return checkpoint;
  }

  /** The passivated snapshots a checkpoint wrote leave memory: they are in KV now. */
  private checkpointWritten(checkpoint: Checkpoint): void {
    this.stores.identifiers.written(checkpoint.identifiers);
    this.stores.users.written(checkpoint.users);
    this.effects.checkpointWritten(checkpoint.seq);
    this.options.logger.debug({ seq: checkpoint.seq, links: checkpoint.links.size, actors: checkpoint.identifiers.length + checkpoint.users.length }, 'checkpoint');
  }
}

/** How the engine applies one input: decoded, its passivated actors loaded first, then ingested. */
class EngineInputs implements InputHandler {
  constructor(
    private readonly engine: IdentityEngine,
    private readonly stores: SnapshotStores,
    readonly outbox: OutboundMessage[],
    private readonly erasures: Erasure[],
    private readonly effects: ControlEffects,
    private readonly checkpointSoon: () => void,
    private readonly decode: Decode,
    /** Storms: the records kept per reason per second of publish time (so a replay keeps the same ones). */
    private readonly budget: ErrorBudget,
    private readonly stats: EngineServiceStats,
  ) {}

  apply(msg: InputMessage, ahead: QueuedInputs): Promise<void> | undefined {
    const seq = msg.seq;
    const input = this.decode(msg);
    if ('rejected' in input) {
      this.stats.rejected++;
      this.engine.skip(seq);
      if (this.budget.keep(input.record.reason, msg.publishedMs())) this.outbox.push(input.rejected);
      return undefined;
    }
    if ('control' in input) return this.applyControl(input.control, seq);
    const touched = this.engine.touches(input.event, input.time);
    if (touched === undefined) return this.ingest(input.event, seq, input.time);
    return this.loadThenIngest(touched, input.event, seq, input.time, ahead);
  }

  /** Applies an event; a suppressed one's input is erased before it counts as applied. */
  private ingest(event: XrefEvent, seq: number, time: number | undefined): Promise<void> | undefined {
    return this.engine.ingest(event, seq, time) === 'suppressed' ? this.effects.eraseInput(seq) : undefined;
  }

  /**
   * A control input: a forget is applied to the state with the hashes of its tombstone (when it
   * was applied before), then the streams are erased before its audit record, which says what
   * was erased, is published (docs/erasure.md).
   */
  private async applyControl(command: ControlCommand, seq: number): Promise<void> {
    if (command.verb === 'unsuppress') {
      this.engine.control(command, seq);
      await this.effects.unsuppressed(command, seq);
      return;
    }
    if (command.verb === 'unlink') {
      const target = this.engine.unlinkTarget(command.identifier);
      const standing = target === undefined ? [] : await this.effects.standing(target.user.ref, seq);
      // what the retracted events will be placed among may be passivated: loaded first, as for an event
      if (target !== undefined) {
        for (let missing = this.engine.unlinkTouches(target, standing); missing !== undefined; missing = this.engine.unlinkTouches(target, standing)) await this.loadAhead(missing, NOTHING_AHEAD);
      }
      this.engine.control(command, seq, { unlink: { target, standing } });
      await this.effects.unlinked(command, seq, target?.user.ref);
      return;
    }
    const known = await this.effects.forgetRecord(command.request);
    this.engine.control(command, seq, { tombstone: appliedHashes(known) });
    const erasure = this.erasures.pop()!;
    this.erasures.length = 0;
    const done = await this.effects.erase(command, erasure, known);
    const at = this.outbox.findIndex((out) => out.msgId === controlId(command.request, 'forget'));
    this.outbox[at] = controlMessage({ ...JSON.parse(this.outbox[at]!.payload), erased: done.erased, through: done.through });
    this.checkpointSoon();
  }

  /** Deleted from the stream: nothing to apply. */
  skip(seq: number): void {
    this.engine.skip(seq);
  }

  /**
   * Loads what the input touches, then applies it. While loads are awaited, a checkpoint may
   * finish and let go of the passivated snapshots it wrote, ready a moment ago (they are in KV
   * now): so the engine is asked again, and the input applied only once nothing is missing, in
   * the same turn as the last check.
   */
  private async loadThenIngest(touched: Touched, event: XrefEvent, seq: number, time: number | undefined, ahead: QueuedInputs): Promise<void> {
    for (let missing: Touched | undefined = touched; missing !== undefined; missing = this.engine.touches(event, time)) await this.loadAhead(missing, ahead);
    await this.ingest(event, seq, time);
  }

  /**
   * Loads, in one parallel batch, the passivated actors this input and the next queued ones will
   * touch, so that actors coming back from KV cost one round trip per batch, not one per input.
   * (The look-ahead is a guess made on the current state; what the input itself needs is always
   * loaded.)
   */
  private async loadAhead(needed: Touched, ahead: QueuedInputs): Promise<void> {
    const identifiers = new Set(needed.identifiers);
    const users = new Set(needed.users);
    const add = (touched: Touched | undefined) => {
      for (const address of touched?.identifiers ?? []) identifiers.add(address);
      for (const address of touched?.users ?? []) users.add(address);
    };
    for (let i = 0; i < Math.min(LOOK_AHEAD, ahead.queued); i++) {
      const input = this.decode(ahead.peek(i)!);
      if ('event' in input) add(this.engine.touches(input.event, input.time));
    }
    await Promise.all([this.stores.identifiers.prefetch([...identifiers]), this.stores.users.prefetch([...users])]);
  }
}
