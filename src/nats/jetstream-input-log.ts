import { AckPolicy, type ConsumerInfo, type ConsumerMessages, DeliverPolicy, JetStreamApiError, type JetStreamClient, type JetStreamManager, type JsMsg, type StoredMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type DeliveryOptions, type InputDelivery, type InputLog, type InputMessage, StoredInput } from '../runtime/input-log.ts';
import { OrderedDelivery } from '../runtime/ordered-delivery.ts';
import { type NatsWaits, untilAnswered } from './retry.ts';
import { FencedError } from '../engine/state-store.ts';
import { JS_ACK_PREFIX, STREAMS, durableName, isDurableOf, subjectMatches } from './subjects.ts';

const CONSUMER_NOT_FOUND = 10014;
/** A gap of this many inputs or more is looked up in the stream's deleted sequences at once (`readGap`). */
const LONG_GAP = 16;

/**
 * The stream sequence of a delivered message, read in place from its reply subject
 * (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<nanos>.<pending>`, or
 * with a domain and an account hash after `ACK` in the newer form): the client's `seq` splits the
 * subject into a dozen strings and builds an object of them, for every message.
 */
export function streamSeqOf(msg: JsMsg): number {
  const reply = replyOf(msg);
  const at = reply === undefined ? -1 : seqTokenAt(reply);
  return at < 0 ? msg.seq : digitsAt(reply!, at); // not a form read here: the client says why
}

/** When a delivered message was published (epoch ms), read in place from the same reply subject (its nanoseconds token). */
export function publishedMsOf(msg: JsMsg): number {
  const reply = replyOf(msg);
  const at = reply === undefined ? -1 : seqTokenAt(reply);
  return at < 0 ? Number(msg.timestampNanos / 1_000_000n) : publishedMsAfter(reply!, at);
}

/** The reply subject the client's message has, though its JsMsg type does not declare it. */
function replyOf(msg: JsMsg): string | undefined {
  const reply = (msg as JsMsg & { readonly reply?: unknown }).reply;
  return typeof reply === 'string' ? reply : undefined;
}

/** Where the stream sequence token of an ack subject begins (after 5 dots, or 7 in the form with a domain); -1 for a subject of neither form. */
function seqTokenAt(reply: string): number {
  if (!reply.startsWith(JS_ACK_PREFIX)) return -1;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) if (reply.charCodeAt(i) === 46) dots++;
  if (dots < 8) return -1;
  let at = 0;
  for (let token = dots === 8 ? 5 : 7; token > 0; token--) at = reply.indexOf('.', at) + 1;
  return at;
}

function digitsAt(reply: string, at: number): number {
  let n = 0;
  for (let c = reply.charCodeAt(at); c >= 48 && c <= 57; c = reply.charCodeAt(++at)) n = n * 10 + (c - 48);
  return n;
}

/** The publish time (epoch ms) in the nanoseconds token, two tokens after the stream sequence's at `seqAt`. */
function publishedMsAfter(reply: string, seqAt: number): number {
  const at = reply.indexOf('.', reply.indexOf('.', seqAt) + 1) + 1;
  const end = reply.indexOf('.', at);
  // the nanoseconds exceed a double's integers: the milliseconds are the digits but the last six
  return Number(reply.slice(at, (end < 0 ? reply.length : end) - 6));
}

const CRLF = Buffer.from('\r\n');
/** `\r\n<name>: ` of the headers read, by name. */
const HEADER_LINES = new Map<string, Buffer>();

/**
 * A delivered message's header block as it came (`NATS/1.0\r\nName: value\r\n…`), read from the
 * client's message where it keeps it: parsing it into the client's header object, for the one
 * header the projection reads on every resolved event, cost more than the rest of its reading.
 * undefined where the client keeps it otherwise (its own `headers` is read then).
 */
function rawHeaders(msg: JsMsg): Buffer | undefined {
  const inner = (msg as JsMsg & { readonly msg?: { readonly _rdata?: unknown; readonly _msg?: { readonly hdr?: unknown } } }).msg;
  const data = inner?._rdata;
  const length = inner?._msg?.hdr;
  if (!(data instanceof Uint8Array) || typeof length !== 'number' || length < 0) return undefined;
  return Buffer.from(data.buffer, data.byteOffset, length);
}

/** Whether the consumer that delivered a message is still the one pulled from. */
interface Incarnation {
  current: boolean;
}

/**
 * The consumers of `stream` (the first page of the server's list, up to 256). A consumer being
 * deleted while the server lists them comes as `null` (the server has no info for it any more):
 * left out.
 */
export async function consumersOf(jsm: JetStreamManager, stream: string): Promise<ConsumerInfo[]> {
  return (await jsm.consumers.list(stream).next()).filter((info): info is ConsumerInfo => info !== null && info !== undefined);
}

/** A message delivered by a consumer (a class, not closures: this runs for every input). */
class DeliveredInput implements InputMessage {
  readonly ackable = true;
  readonly seq: number;
  /** Where the stream sequence is in the reply subject (-1: a form not read here). */
  private readonly seqAt: number;
  /** Read once: the client slices it off the headers again on every read. */
  readonly data: Uint8Array;
  constructor(
    private readonly msg: JsMsg,
    private readonly incarnation: Incarnation = { current: true },
  ) {
    // the reply subject read once, for the sequence now and the publish time when asked
    const reply = replyOf(msg);
    this.seqAt = reply === undefined ? -1 : seqTokenAt(reply);
    this.seq = this.seqAt < 0 ? msg.seq : digitsAt(reply!, this.seqAt);
    this.data = msg.data;
  }
  get subject() {
    return this.msg.subject;
  }
  get redelivered() {
    return this.msg.redelivered;
  }
  publishedMs() {
    return this.seqAt < 0 ? Number(this.msg.timestampNanos / 1_000_000n) : publishedMsAfter(replyOf(this.msg)!, this.seqAt);
  }
  header(name: string): string | undefined {
    const raw = rawHeaders(this.msg);
    if (raw === undefined) return this.msg.headers?.get(name) || undefined;
    let line = HEADER_LINES.get(name);
    if (line === undefined) HEADER_LINES.set(name, (line = Buffer.from(`\r\n${name}: `)));
    const at = raw.indexOf(line);
    if (at < 0) return undefined;
    const end = raw.indexOf(CRLF, at + line.length);
    return raw.toString('utf8', at + line.length, end < 0 ? raw.length : end);
  }
  /**
   * With AckPolicy.All, acks every input before it too. Not once its consumer was made again
   * under the same name: the ack subject names the consumer, not its incarnation, and the new one
   * would take the old delivery count as its ack floor and ignore its own acks below it.
   */
  ack() {
    if (this.incarnation.current) this.msg.ack();
  }
}

export function deliveredInput(msg: JsMsg): InputMessage {
  return new DeliveredInput(msg);
}

export function fetchedInput(msg: StoredMsg): InputMessage {
  return new StoredInput(msg.seq, msg.subject, msg.data, msg.time.getTime());
}

export interface JetStreamInputLogOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  /** Where waits for NATS show (readiness, metrics), and the connection's reconnects, after which each consumer is made again. */
  readonly waits: NatsWaits;
  /** The log (default XREF_IN) and the subjects read from it (default: all of them, events and control inputs). */
  readonly stream?: string;
  readonly filter?: string;
  /** Inputs delivered to a consumer and not acked past which the server delivers no more (default 20,000). */
  readonly maxAckPending?: number;
  /**
   * A durable consumer nobody pulls from for this long is removed by the server (nats-server 2.9
   * and later honour it on durable consumers too). None: kept until the consumer's next delivery
   * deletes it. A delivery always makes its consumer anew, so losing an idle one costs nothing.
   */
  readonly inactiveThresholdMs?: number;
  /** Deliver each message's headers only (its data empty): for a reader that finds what it needs there. */
  readonly headersOnly?: boolean;
}

/**
 * The log on JetStream: each consumer reads it with a durable pull consumer of its own
 * (AckPolicy.All), `<name>`, or under a lease `<name>-<epoch>`. A delivery deletes the consumer's
 * own earlier durable consumers (never another consumer's), waits out an outage, and makes its
 * consumer again when the server lost it.
 */
export class JetStreamInputLog implements InputLog {
  readonly stream: string;
  /** Undefined: the whole stream (the engine's log: events and control inputs). */
  readonly filter: string | undefined;
  readonly maxAckPending: number;

  constructor(readonly options: JetStreamInputLogOptions) {
    this.stream = options.stream ?? STREAMS.in;
    this.filter = options.filter;
    this.maxAckPending = options.maxAckPending ?? 20_000;
  }

  async lastSeq(): Promise<number> {
    return (await this.options.jsm.streams.info(this.stream)).state.last_seq;
  }

  /** The stream's deleted sequences through its end when last asked (for a long gap). */
  private deleted: { through: number; seqs: ReadonlySet<number> } | undefined;

  /**
   * An input of a gap in a delivery: a long gap (a forget's erased inputs) is looked up in the
   * stream's list of deleted sequences, asked once for the whole gap, instead of one read each.
   */
  async readGap(seq: number, through: number): Promise<InputMessage | undefined> {
    if (through - seq >= LONG_GAP && (this.deleted === undefined || through > this.deleted.through)) {
      const { jsm, logger, waits } = this.options;
      const { state } = await untilAnswered('reading deleted inputs', () => jsm.streams.info(this.stream, { deleted_details: true }), { logger, waits, idempotent: true });
      this.deleted = { through: state.last_seq, seqs: new Set(state.deleted ?? []) };
    }
    if (this.deleted !== undefined && seq <= this.deleted.through && this.deleted.seqs.has(seq)) return undefined;
    return this.read(seq);
  }

  async read(seq: number): Promise<InputMessage | undefined> {
    const { jsm, logger, waits } = this.options;
    const stored = await untilAnswered('reading missing inputs', () => jsm.streams.getMessage(this.stream, { seq }), { logger, waits, idempotent: true });
    // a message this consumer does not read (a control input, for the projection's `xref.in.>`) is a gap to it
    return stored === null || (this.filter !== undefined && !subjectMatches(this.filter, stored.subject)) ? undefined : fetchedInput(stored);
  }

  async deliver(options: DeliveryOptions): Promise<InputDelivery> {
    const delivery = new JetStreamDelivery(this, options);
    await delivery.open(options.fromSeq);
    return delivery.ordered;
  }
}

/** One consumer's delivery: its durable consumer, made again whenever the server loses it. */
class JetStreamDelivery {
  readonly ordered: OrderedDelivery;
  private messages: ConsumerMessages | undefined;
  private closing: Promise<void> | undefined;
  private forgetReconnects: (() => void) | undefined;

  constructor(
    private readonly log: JetStreamInputLog,
    private readonly options: DeliveryOptions,
  ) {
    this.ordered = new OrderedDelivery(options.fromSeq, { read: (seq, through) => log.readGap(seq, through), close: () => this.close() }, options.delivered, log.options.logger);
  }

  /** This holding's durable consumer (one per lease epoch, so a fenced holder pulling again cannot take the next one's inputs). */
  private get durable(): string {
    return durableName(this.options.consumer, this.options.lease?.epoch ?? 0);
  }

  /**
   * Makes the durable consumer at `startSeq` and pulls from it. The consumer's earlier durable
   * consumers go first (a fenced holder pulling again finds its own gone); never by a holder that
   * lost its lease.
   */
  async open(startSeq: number): Promise<void> {
    const { jsm } = this.log.options;
    const stream = this.log.stream;
    if (this.options.lease !== undefined && !this.options.lease.valid()) throw new FencedError();
    for (const info of await consumersOf(jsm, stream)) {
      if (!isDurableOf(this.options.consumer, info.name)) continue;
      try {
        await jsm.consumers.delete(stream, info.name);
      } catch (error) {
        if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw error;
      }
    }
    await jsm.consumers.add(stream, {
      durable_name: this.durable,
      ...(this.log.filter === undefined ? {} : { filter_subject: this.log.filter }),
      ack_policy: AckPolicy.All,
      ack_wait: nanos(60_000),
      max_ack_pending: this.log.maxAckPending,
      ...(this.log.options.inactiveThresholdMs === undefined ? {} : { inactive_threshold: nanos(this.log.options.inactiveThresholdMs) }),
      ...(this.log.options.headersOnly === true ? { headers_only: true } : {}),
      ...(startSeq <= 1 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }),
    });
    await this.subscribe();
  }

  /**
   * Pulls from the durable consumer. After a reconnect, or should the consumer be gone (a server
   * that lost it) or the pull end, the consumer is made again, right after the last input queued
   * or handed out, and pulled from anew. Not merely pulled again after a reconnect: a server that
   * was killed may come back counting inputs as delivered that never arrived, and would hold
   * them (and, past `maxAckPending`, every input after them) until their ack wait ran out.
   */
  private async subscribe(): Promise<void> {
    const { js, logger, waits } = this.log.options;
    const consumer = await js.consumers.get(this.log.stream, this.durable);
    const incarnation: Incarnation = { current: true };
    const messages = await consumer.consume({
      max_messages: 2000,
      callback: (msg) => this.ordered.push(new DeliveredInput(msg, incarnation)),
    });
    this.messages = messages;
    this.forgetReconnects?.();
    if (this.closing !== undefined) {
      // closed while this consumer was being made again
      await messages.close();
      return;
    }
    this.forgetReconnects = waits.whenReconnected(() => {
      logger.info({ consumer: this.durable, resumeSeq: this.ordered.resumeSeq }, `reconnected: the ${this.options.consumer} consumer is made again where it was read`);
      void messages.close();
    });
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === 'consumer_not_found' && status.count >= 2) {
          logger.warn({ consumer: this.durable }, `the ${this.options.consumer} consumer is gone from the server: making it again`);
          await messages.close();
        }
      }
    })().catch(() => undefined);
    void messages.closed().then(() => {
      if (this.closing !== undefined) return;
      // what this consumer delivered and is still queued is never acked to the one made next
      incarnation.current = false;
      untilAnswered('resubscribing', () => this.open(this.ordered.resumeSeq), { logger, waits }).catch((error: Error) =>
        error instanceof FencedError ? this.options.fenced(error.message) : this.options.failed(error),
      );
    });
  }

  /** Stops pulling (what was delivered stays queued). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.forgetReconnects?.();
      await this.messages?.close();
    })();
    return this.closing;
  }
}
