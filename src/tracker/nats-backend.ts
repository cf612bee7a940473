/**
 * `natsBackend({ nc | servers, subject })`: the tracker's events straight onto xref's input log,
 * published to `xref.in.<source>` with `Nats-Msg-Id` = the event id (JetStream stores an id once
 * within the stream's duplicate window), from a bounded queue in the background
 * (src/tracker/delivery-queue.ts): `emit` never waits for it.
 *
 * Publishing goes through xref's pipelined publisher (src/nats/publisher.ts), which retries an
 * outage or a restart itself, same ids, until JetStream acks; a batch is delivered once every
 * event in it is acked. An event JetStream refuses for good (PublishRejectedError) fails, reported
 * as `rejected` with JetStream's error.
 */
import { type ConnectionOptions, type NatsConnection, connect } from '@nats-io/transport-node';
import { InvalidConfigError, XrefError } from '../domain/errors.ts';
import { JetStreamPublisher, type PublishCallback, PublishRejectedError } from '../nats/publisher.ts';
import { subjects } from '../nats/subjects.ts';
import { type BatchAttempt, type DeliveryOptions, DeliveryQueue, type ItemRejection, type Outcome, QueuedBackend } from './delivery-queue.ts';
import { settledWithin } from './timing.ts';
import type { WaitOptions } from './types.ts';

export interface NatsBackendOptions extends DeliveryOptions {
  /** A connection of the caller's: used as it is, and left open by `close()`. Give `nc` or `servers`. */
  nc?: NatsConnection;
  /** NATS server URL(s) to connect to: the backend connects itself (reconnecting forever) and closes that connection on `close()`. */
  servers?: string | string[];
  /**
   * With `servers`: more of nats.js's connect options, e.g. credentials (`user` and `pass`,
   * `token`, or `authenticator: credsAuthenticator(…)`) or `tls`; docs/security.md gives the user
   * an event publisher needs.
   */
  connectOptions?: Omit<ConnectionOptions, 'servers'>;
  /** Where to publish: an input subject of xref, `xref.in.<source>`; default `xref.in.tracker`. */
  subject?: string;
  /** How long to wait for JetStream's ack before the same message (same id) is sent again, in ms; default 4,000. */
  ackTimeoutMs?: number;
}

export const NATS_DEFAULTS = {
  subject: subjects.in('tracker'),
  flushAt: 1000,
  flushIntervalMs: 100,
  maxInFlight: 4,
  ackTimeoutMs: 4000,
} as const;

/** A literal subject under `xref.in.`: tokens of printable characters, no wildcards. */
function validSubject(subject: unknown): subject is string {
  if (typeof subject !== 'string' || !subject.startsWith(subjects.inPrefix) || subject.length === subjects.inPrefix.length) return false;
  return subject.split('.').every((token) => token.length > 0 && token !== '*' && token !== '>' && !/[\s\x00-\x1f\x7f]/.test(token));
}

/** A backend that publishes to JetStream; see `NatsBackendOptions` and docs/tracker.md. */
export class NatsBackend extends QueuedBackend {
  protected readonly queue: DeliveryQueue;
  readonly subject: string;
  private readonly ownConnection: boolean;
  private readonly ackTimeoutMs: number;
  private readonly servers: string | string[] | undefined;
  private readonly connectOptions: Omit<ConnectionOptions, 'servers'>;
  private connection: Promise<NatsConnection> | undefined;
  private publisher: JetStreamPublisher | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: NatsBackendOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new InvalidConfigError('natsBackend', options, 'must be an options object { nc | servers, subject }');
    const { nc, servers, connectOptions } = options;
    if ((nc === undefined) === (servers === undefined)) {
      throw new XrefError('XREF_INVALID_CONFIG', 'config natsBackend needs exactly one of nc (a NATS connection of yours) and servers (URLs to connect to)', { field: 'natsBackend.nc' });
    }
    if (nc !== undefined && (typeof nc !== 'object' || nc === null || typeof (nc as NatsConnection).publish !== 'function')) {
      throw new InvalidConfigError('natsBackend.nc', '(not a connection)', 'must be a NatsConnection');
    }
    if (servers !== undefined && !(typeof servers === 'string' ? servers !== '' : Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === 'string' && s !== ''))) {
      throw new InvalidConfigError('natsBackend.servers', servers, 'must be a NATS URL or a non-empty list of them, e.g. nats://127.0.0.1:4222');
    }
    if (connectOptions !== undefined && (typeof connectOptions !== 'object' || connectOptions === null || Array.isArray(connectOptions) || nc !== undefined)) {
      throw new InvalidConfigError('natsBackend.connectOptions', nc !== undefined ? '(given with nc)' : connectOptions, 'must be an object of connect options, given with servers (a connection of yours has its own)');
    }
    const subject = options.subject ?? NATS_DEFAULTS.subject;
    if (!validSubject(subject)) throw new InvalidConfigError('natsBackend.subject', subject, `must be one of xref's input subjects, ${subjects.inPrefix}<source>, without wildcards`);
    this.subject = subject;
    this.ackTimeoutMs = options.ackTimeoutMs ?? NATS_DEFAULTS.ackTimeoutMs;
    if (!Number.isInteger(this.ackTimeoutMs) || this.ackTimeoutMs < 1) throw new InvalidConfigError('natsBackend.ackTimeoutMs', this.ackTimeoutMs, 'must be an integer >= 1');
    this.ownConnection = nc === undefined;
    this.servers = servers;
    this.connectOptions = connectOptions ?? {};
    if (nc !== undefined) this.connection = Promise.resolve(nc);
    this.queue = new DeliveryQueue({
      ...options,
      kind: 'natsBackend',
      keepIds: true,
      transport: (batch) => this.deliver(batch),
      defaults: { flushAt: NATS_DEFAULTS.flushAt, flushIntervalMs: NATS_DEFAULTS.flushIntervalMs, maxInFlight: NATS_DEFAULTS.maxInFlight },
    });
  }

  /** Closes the queue (see DeliveryQueue.close), then the publisher, then the connection if the backend opened it. */
  override close(options?: WaitOptions): Promise<void> {
    this.closed ??= this.closeOnce(options);
    return this.closed;
  }

  private async closeOnce(options: WaitOptions | undefined): Promise<void> {
    await this.queue.close(options);
    this.closing = true;
    await this.publisher?.close().catch(() => undefined);
    if (this.ownConnection && this.connection !== undefined) {
      // a connection still being made is closed once it is made
      const connection = this.connection;
      const closeIt = connection.then((nc) => nc.close()).catch(() => undefined);
      if (await settledWithin(connection, 0)) await closeIt;
    }
  }

  private async publisherFor(): Promise<JetStreamPublisher> {
    if (this.publisher !== undefined) return this.publisher;
    // a first connection that fails is tried again at the batch's next attempt (backoff); once
    // made, it reconnects forever
    this.connection ??= connect({ name: 'xref-tracker', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5000, noAsyncTraces: true, ...this.connectOptions, servers: this.servers! });
    let nc: NatsConnection;
    try {
      nc = await this.connection;
    } catch (error) {
      this.connection = undefined; // the next attempt connects again
      throw new XrefError('XREF_NATS_UNAVAILABLE', `natsBackend cannot connect to ${String(this.servers)}: ${(error as Error).message}`, { cause: error });
    }
    if (this.closing) throw new XrefError('XREF_CLOSED', 'natsBackend closed');
    this.publisher ??= new JetStreamPublisher(nc, this.queue.logger.child({ component: 'tracker-nats-publisher' }), this.ackTimeoutMs);
    return this.publisher;
  }

  private async deliver(batch: BatchAttempt): Promise<Outcome> {
    const publisher = await this.publisherFor();
    return new Promise<Outcome>((resolve) => {
      let left = batch.jsons.length;
      let rejected: ItemRejection[] | undefined;
      let other: Error | undefined;
      const done: PublishCallback<number> = (error, _ack, index) => {
        if (error instanceof PublishRejectedError) (rejected ??= []).push({ index, error });
        else if (error !== undefined) other ??= error;
        if (--left > 0) return;
        // only a closing publisher gives another error: what it did not store is tried again (same ids)
        if (other !== undefined) resolve({ kind: 'retry', error: other });
        else resolve(rejected === undefined ? { kind: 'delivered' } : { kind: 'delivered', rejected });
      };
      for (let i = 0; i < batch.jsons.length; i++) publisher.publishThen(this.subject, batch.jsons[i]!, batch.ids[i]!, done, i);
    });
  }
}

/** `natsBackend({ nc | servers, subject, ...queue options })`: see `NatsBackendOptions`. */
export function natsBackend(options: NatsBackendOptions): NatsBackend {
  return new NatsBackend(options);
}
