/**
 * Fills a read model from a log with no NATS: the offline engine decides (IdentityEngine, as the
 * streaming service runs it, behind the same decoder and payload rules), its decisions and the
 * error records of the inputs it refuses become the messages the service publishes
 * (src/service/outputs.ts), and every message, inputs included, becomes its rows through
 * rows.ts `messageRows`, as the projection makes them. What the query tests and the query
 * benchmark read is so what a real projection would have written.
 */
import { type ConfigInput, resolveConfig } from '../../src/domain/config.ts';
import { type Limits, defaultLimits } from '../../src/domain/limits.ts';
import { IdentityEngine } from '../../src/engine/engine.ts';
import { msgIdHeaderValue } from '../../src/nats/publisher.ts';
import { HEADERS, subjects } from '../../src/nats/subjects.ts';
import { PROJECTED_STREAMS, type ProjectedStream, type ProjectionBatch, type ProjectionRows, type ReadModelStore, type RetractionRow, type StreamPosition } from '../../src/projection/read-model.ts';
import { type StreamMessage, messageRows } from '../../src/projection/rows.ts';
import { PROJECTED_STREAM_NAMES } from '../../src/projection/stream-identity.ts';
import { type DecodedInput, type EncodedInput, inputDecoder } from '../../src/service/input.ts';
import { type OutboundMessage, messageSink } from '../../src/service/outputs.ts';

const encoder = new TextEncoder();

/** One input of the log: the event (or any raw value, or JSON text, to be refused), its source, when it was published. */
export interface FillInput {
  readonly event: unknown;
  /** `xref.in.<source>` (default `test`). */
  readonly source?: string;
  /** When it was published (default: its timestamp, or the filler's clock when it has none). */
  readonly publishedMs?: number;
}

export interface FillOptions {
  readonly config?: ConfigInput;
  readonly limits?: Limits;
  /** The claim's owner the rows are applied under (default `fill`). */
  readonly owner?: string;
  /** Inputs per transaction (default 5000). */
  readonly batchSize?: number;
  /** The publish time of an input without timestamp or publishedMs (default 2024-01-01T00:00:00Z + its seq in ms). */
  readonly clock?: (seq: number) => number;
}

/** Every event from one source. */
export function fromSource(events: readonly unknown[], source = 'test'): FillInput[] {
  return events.map((event) => ({ event, source }));
}

/** The stream a message of the engine goes to, by its subject. */
function streamOf(subject: string): ProjectedStream {
  const stream = PROJECTED_STREAMS.find((role) => role !== 'in' && subject.startsWith(PROJECTED_STREAM_NAMES[role].filter.slice(0, -1)));
  if (stream === undefined) throw new Error(`no projected stream holds ${subject}`);
  return stream;
}

/** The engine's messages are no inputs: nothing decodes them. */
const notAnInput = (): DecodedInput => {
  throw new Error('only XREF_IN messages are decoded as inputs');
};

const BASE_MS = Date.parse('2024-01-01T00:00:00.000Z');
const CREATED = '2024-01-01T00:00:00.000Z';

type Rows = { -readonly [K in keyof ProjectionRows]: Array<ProjectionRows[K][number]> } & { retractions: RetractionRow[] };
const emptyRows = (): Rows => ({ events: [], resolutions: [], unmatched: [], audit: [], errors: [], retractions: [] });

/**
 * A log turned into batches of rows, input by input: an engine that keeps its state across calls,
 * so more inputs can be added later (events arriving between two pages) with the sequences going on.
 */
export class ReadModelFill {
  private readonly engine: IdentityEngine;
  /** XREF_IN messages as the engine reads them: the envelope, then the config's payload rules. */
  private readonly decode: (msg: EncodedInput) => DecodedInput;
  private readonly clock: (seq: number) => number;
  /** The last sequence of each stream. */
  private readonly seqs: Record<ProjectedStream, number> = { in: 0, groups: 0, unmatched: 0, audit: 0, errors: 0 };
  /** Messages the engine handed over while the current input was applied. */
  private outbox: OutboundMessage[] = [];
  /** The publish time of the input being applied (the engine's messages are published then). */
  private now = BASE_MS;

  constructor(options: FillOptions = {}) {
    const config = resolveConfig(options.config ?? {});
    this.decode = inputDecoder(config, options.limits ?? defaultLimits());
    this.clock = options.clock ?? ((seq) => BASE_MS + seq);
    this.engine = new IdentityEngine({ config, sink: messageSink((message) => this.outbox.push(message), (): number => this.engine.seq) });
  }

  /** The XREF_IN sequence of the last input. */
  get lastSeq(): number {
    return this.seqs.in;
  }

  /** The rows of more inputs, in one batch with the streams' new positions. */
  batch(inputs: readonly FillInput[]): ProjectionBatch {
    const rows = emptyRows();
    for (const input of inputs) {
      const seq = ++this.seqs.in;
      const json = typeof input.event === 'string' ? input.event : JSON.stringify(input.event);
      const timestamp = typeof input.event === 'object' && input.event !== null ? (input.event as { timestamp?: unknown }).timestamp : undefined;
      const published = input.publishedMs ?? (typeof timestamp === 'string' && !Number.isNaN(Date.parse(timestamp)) ? Date.parse(timestamp) : this.clock(seq));
      const msg: StreamMessage = { seq, subject: subjects.in(input.source ?? 'test'), data: encoder.encode(json), publishedMs: () => published };
      this.now = published;
      // decoded once: for its row, and for the engine, as the service applies it (a refused input's error record goes out instead)
      let decoded: DecodedInput | undefined;
      this.add(rows, 'in', msg, (m) => (decoded = this.decode(m)));
      if (decoded === undefined) throw new Error(`input ${seq} was not decoded`);
      if ('event' in decoded) this.engine.ingest(decoded.event, seq, decoded.time);
      // the filler's inputs are events (`xref.in.<source>`): no control input comes here
      else if ('rejected' in decoded) this.outbox.push(decoded.rejected);
      this.flushOutbox(rows);
    }
    return { ...rows, positions: this.positions() };
  }

  /** Ends the log as `groupEvents` does: what is still buffered leaves as `unlinked`. */
  finish(): ProjectionBatch {
    const rows = emptyRows();
    this.engine.finish();
    this.flushOutbox(rows);
    return { ...rows, positions: this.positions() };
  }

  /** The engine's messages, published (as the service would) when the input that caused them was. */
  private flushOutbox(rows: Rows): void {
    const published = this.now;
    for (const out of this.outbox.splice(0)) {
      const stream = streamOf(out.subject);
      const header = out.header;
      const msgId = msgIdHeaderValue(out.msgId);
      // the headers a stored message has: the engine's, and its Nats-Msg-Id
      const headerOf = (name: string) => (name === HEADERS.msgId ? msgId : header?.name === name ? header.value : undefined);
      this.add(rows, stream, { seq: ++this.seqs[stream], subject: out.subject, data: encoder.encode(out.payload), publishedMs: () => published, header: headerOf }, notAnInput);
    }
  }

  private add(rows: Rows, stream: ProjectedStream, msg: StreamMessage, decode: (msg: EncodedInput) => DecodedInput): void {
    const made = messageRows(stream, msg, decode);
    switch (made.table) {
      case 'events':
        rows.events.push(made.row);
        break;
      case 'resolutions':
        rows.resolutions.push(made.row);
        break;
      case 'retractions':
        rows.retractions.push(made.row);
        break;
      case 'unmatched':
        rows.unmatched.push(made.row);
        break;
      case 'audit':
        rows.audit.push(made.row);
        break;
      case 'errors':
        rows.errors.push(made.row);
        break;
      case 'none':
        break;
    }
  }

  private positions(): StreamPosition[] {
    return PROJECTED_STREAMS.filter((stream) => this.seqs[stream] > 0).map((stream) => ({ stream, seq: this.seqs[stream], created: CREATED }));
  }
}

/** A batch holding only `rows` of one table, no positions (e.g. error rows made by hand). */
export function rowsBatch(rows: Partial<ProjectionRows>): ProjectionBatch {
  return { ...emptyRows(), ...rows, positions: [] };
}

/** Writes batches under `owner`'s claim (taken here). */
export async function applyBatches(store: ReadModelStore, batches: Iterable<ProjectionBatch>, owner = 'fill'): Promise<void> {
  if (!(await store.claim(owner, 3_600_000))) throw new Error(`the read model is claimed by another owner than ${owner}`);
  for (const batch of batches) await store.apply(batch, owner);
}

/**
 * Fills `store` with `inputs` (`finish`: end the log as groupEvents does), `batchSize` inputs per
 * transaction. Returns the filler, to add more inputs later.
 */
export async function fillReadModel(store: ReadModelStore, inputs: readonly FillInput[], options: FillOptions & { finish?: boolean } = {}): Promise<ReadModelFill> {
  const fill = new ReadModelFill(options);
  await addToReadModel(store, fill, inputs, options);
  if (options.finish === true) await applyBatches(store, [fill.finish()], options.owner);
  return fill;
}

/** More inputs through the same filler. */
export async function addToReadModel(store: ReadModelStore, fill: ReadModelFill, inputs: readonly FillInput[], options: Pick<FillOptions, 'owner' | 'batchSize'> = {}): Promise<void> {
  const size = options.batchSize ?? 5000;
  const batches = function* () {
    for (let i = 0; i < inputs.length; i += size) yield fill.batch(inputs.slice(i, i + size));
  };
  await applyBatches(store, batches(), options.owner);
}


/** A message to publish: its subject, payload, Nats-Msg-Id, and the header the engine adds (a resolution's). */
export interface LogMessage {
  readonly subject: string;
  readonly payload: string;
  readonly msgId: string;
  readonly header?: { readonly name: string; readonly value: string };
}

/**
 * What the streaming service publishes for a log, decided by the offline engine as ReadModelFill
 * does: the inputs for XREF_IN (input N of the list is its sequence N, so publish them first into
 * an empty stream), and the engine's messages for the output streams, in the order it sent them.
 */
export function logMessages(inputs: readonly FillInput[], options: Pick<FillOptions, 'config' | 'limits'> = {}): { inputs: LogMessage[]; outputs: OutboundMessage[] } {
  const config = resolveConfig(options.config ?? {});
  const decode = inputDecoder(config, options.limits ?? defaultLimits());
  const outputs: OutboundMessage[] = [];
  const engine: IdentityEngine = new IdentityEngine({ config, sink: messageSink((message) => outputs.push(message), (): number => engine.seq) });
  const messages = inputs.map((input, i): LogMessage => {
    const seq = i + 1;
    const payload = typeof input.event === 'string' ? input.event : JSON.stringify(input.event);
    const subject = subjects.in(input.source ?? 'test');
    const decoded = decode({ seq, subject, data: encoder.encode(payload), publishedMs: () => input.publishedMs ?? BASE_MS + seq });
    if ('event' in decoded) engine.ingest(decoded.event, seq, decoded.time);
    else if ('rejected' in decoded) outputs.push(decoded.rejected);
    const id = (input.event as { id?: unknown } | null)?.id;
    return { subject, payload, msgId: typeof id === 'string' ? id : `input-${seq}` };
  });
  return { inputs: messages, outputs };
}
