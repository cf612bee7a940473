/**
 * The read model's port: what the projection writes (rows, in batches, with each stream's
 * position in the same transaction) and what the queries read. Adapters: SQLite
 * (sqlite-store.ts, the embedded default) and PostgreSQL (postgres-store.ts); one contract suite
 * (test/helpers/read-model-contract.ts) runs against both. Nothing here knows SQL or NATS.
 */
import type { CounterChanges, CounterScalars, CounterState } from '../activity/activity-counter.ts';
import type { PeriodCounts } from '../activity/activity-series.ts';
import type { EventFeatures, FeatureRules } from '../activity/event-features.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';

export type { ActivityEvent, ActivityInputs, ActivityMark, ActivityResolution, ActivityRetraction, CountsRange, StoredCounts } from './activity-sql.ts';
import type { ActivityInputs, ActivityMark, CountsRange, StoredCounts } from './activity-sql.ts';

/** The streams the projection reads, by their role (the names are in src/nats/subjects.ts STREAMS). */
export type ProjectedStream = 'in' | 'groups' | 'unmatched' | 'audit' | 'errors';
export const PROJECTED_STREAMS: readonly ProjectedStream[] = ['in', 'groups', 'unmatched', 'audit', 'errors'];

/**
 * How far the read model holds a stream, and which incarnation of the stream that was: a stream
 * deleted and made again (`xref replay --republish`) has another creation time and restarts its
 * sequences, so positions of the old one mean nothing for it.
 */
export interface StreamPosition {
  readonly stream: ProjectedStream;
  /** The last stream sequence applied (0: none). */
  readonly seq: number;
  /** The stream's creation time as the server reports it (ISO 8601). */
  readonly created: string;
  /**
   * Groups stream, as this projection has written it since its start: every input up to it has
   * all its outputs at or below `seq` (the highest `stored` of the `Xref-Resolution` headers
   * written, see src/service/outputs.ts). Not kept in the database.
   */
  readonly stored?: number;
}

/**
 * An accepted event of XREF_IN as it is stored: its columns, its identifiers (for the
 * `identifier=` filter and `who`) and its JSON, not the parsed envelope: a batch holds thousands of
 * rows while it waits to be written, and the parsed envelopes lived long enough to be promoted
 * (`eventRow` makes one).
 */
export interface EventRow {
  /** Its XREF_IN sequence: the log order, and the tie-breaker of every time order. */
  readonly seq: number;
  readonly id: string;
  readonly name: string | undefined;
  readonly category: string | undefined;
  readonly sessionId: string | undefined;
  /** kind → value, as the engine reads them (values strings). */
  readonly ids: Readonly<Record<string, string>>;
  /** The `<source>` of `xref.in.<source>`, decoded. */
  readonly source: string;
  /** Event time (epoch ms): its timestamp, or when it was published when it has none. */
  readonly timeMs: number;
  /** The event's JSON: as the log holds it when that is the event as read, else the envelope as read. */
  readonly json: string;
  /** What the active-people counts read of it (src/activity/event-features.ts), handed to the counting in memory (activity-feed.ts); undefined when the projection does not count. */
  readonly counted?: EventFeatures | undefined;
}

/**
 * The row of `event` (validated, as the engine reads it) at `seq`; `json`: the log's own text of
 * it, when it is that; `features`: the activity config's, when the projection counts.
 */
export function eventRow(seq: number, event: XrefEvent, source: string, timeMs: number, json?: string, features?: FeatureRules): EventRow {
  return { seq, id: event.id, name: event.name, category: event.category, sessionId: event.session_id, ids: event.ids, source, timeMs, json: json ?? JSON.stringify(event), counted: features?.of(event) };
}

/** An event resolved to a user (XREF_GROUPS). */
export interface ResolutionRow {
  /** The XREF_IN sequence of the event: with the user, the key that makes applying it twice change nothing. */
  readonly eventSeq: number;
  readonly user: UserRef;
  readonly via: Identifier;
  /**
   * The XREF_IN sequence of the input whose applying resolved it (`at` in its `Xref-Resolution`
   * header): the event's own, or a later link's that flushed it from a buffer. A message without
   * `at` (published before the engine wrote it) takes the event's own.
   */
  readonly decidedSeq: number;
  /**
   * Its output id (`<event id>:<user kind>.<user id>`, `:after-<unlink input>` when an unlink
   * placed it again): its message's Nats-Msg-Id, what a retraction names it by. Undefined for a
   * message without one (made by hand).
   */
  readonly outputId?: string;
}

/**
 * A resolution taken back (XREF_GROUPS, the `Xref-Retraction` header): an unlink detached the
 * identifier it came through (docs/erasure.md, Unlink). The resolution leaves the user's events;
 * the row keeps what it was, for the active-people counts and for "what was retracted".
 */
export interface RetractionRow {
  /** `<retracted output id>:retracted-<unlink input>`: its key. */
  readonly outputId: string;
  /** Its XREF_GROUPS sequence. */
  readonly streamSeq: number;
  /** The output id of the resolution taken back. */
  readonly retracted: string;
  readonly eventId: string;
  readonly user: UserRef;
  /** The unlink input (XREF_IN). */
  readonly seq: number;
}

/** An event that left a buffer unplaced (XREF_UNMATCHED). */
export interface UnmatchedRow {
  readonly outputId: string;
  /** Its XREF_UNMATCHED sequence (the tie-breaker of its list). */
  readonly streamSeq: number;
  readonly eventSeq: number;
  readonly reason: string;
  readonly identifier: Identifier;
  /** Event time of the event (its timestamp; when it has none, the time the unmatched record was published). */
  readonly timeMs: number;
  /** The message as published: `{ seq, reason, identifier, event }`. */
  readonly record: Readonly<Record<string, unknown>>;
}

/** A decision of the engine (XREF_AUDIT): links, relinks, conflicts, refusals. */
export interface AuditRow {
  readonly outputId: string;
  readonly streamSeq: number;
  readonly reason: string;
  readonly identifier: Identifier;
  /** The user the identifier belongs to after the decision (or would have, for a refusal). */
  readonly user?: UserRef;
  /** The XREF_IN sequence and id of the event that caused it. */
  readonly eventSeq: number;
  readonly eventId: string;
  /** When the record was published (epoch ms): audit records carry no event time of their own. */
  readonly timeMs: number;
  /** The record as published. */
  readonly record: Readonly<Record<string, unknown>>;
}

/** A rejected input, wherever it was rejected (XREF_ERRORS). */
export interface ErrorRow {
  /** The record's id (its Nats-Msg-Id). */
  readonly id: string;
  readonly streamSeq: number;
  /** `xref.errors.<reason>`. */
  readonly reason: string;
  /** Where it was rejected: `http`, `publish` or `engine`. */
  readonly origin: string;
  /** When it was rejected (epoch ms). */
  readonly timeMs: number;
  /** The record as published (reason, code, field, value, source, raw, …; src/domain/error-record.ts). */
  readonly record: Readonly<Record<string, unknown>>;
}

/** The rows of a batch, by table. */
export interface ProjectionRows {
  readonly events: readonly EventRow[];
  readonly resolutions: readonly ResolutionRow[];
  readonly unmatched: readonly UnmatchedRow[];
  readonly audit: readonly AuditRow[];
  readonly errors: readonly ErrorRow[];
}

/**
 * An unlink's audit record (`xref.audit.unlink`), as read: it names the identifier's kind only;
 * its request's record in `xref_control` holds the identifier's hash.
 */
export interface UnlinkRecord {
  readonly request: string;
  /** Its XREF_AUDIT sequence. */
  readonly streamSeq: number;
  /** The unlink input (XREF_IN). */
  readonly seq: number;
  readonly kind: string;
  /** Whether the engine found the identifier linked. */
  readonly found: boolean;
}

/**
 * The link an unlink ends, its identifier found by hashing the links of its kind: the link the
 * audit stream set before the unlink's record goes; a link record after it sets it again.
 */
export interface UnlinkRow {
  /** The unlink record's XREF_AUDIT sequence. */
  readonly streamSeq: number;
  /** The unlink input. */
  readonly seq: number;
  readonly identifier: Identifier;
}

/** A forget's audit record (`xref.audit.forget`), as read: which request, and where the streams ended once the engine had erased the user. */
export interface ForgetRecord {
  readonly request: string;
  /** Its XREF_AUDIT sequence. */
  readonly streamSeq: number;
  /** The forget's input (XREF_IN). */
  readonly seq: number;
  /** Per stream name (`XREF_IN`, …), its last sequence once the erasure was done. */
  readonly through?: Readonly<Record<string, number>>;
}

/**
 * What a forget erases of the read model (docs/read-model.md, forgetting a user), found by the
 * projection by hashing what the read model holds against the request's tombstone. The ids are
 * here in memory only: no row keeps them.
 */
export interface ForgetRow {
  readonly request: string;
  /** The forget record's XREF_AUDIT sequence. */
  readonly streamSeq: number;
  /** The user; undefined when the read model holds no user of that kind and hash (nothing of the user is left to find). */
  readonly user?: UserRef;
  /** The identifiers of the user's cluster the read model holds, the user's own id among them. */
  readonly identifiers: readonly Identifier[];
  /** When the projection applied it (ISO 8601): the receipt's time. */
  readonly at: string;
}

/** An event the engine dropped because it carried a forgotten id (`xref.audit.suppressed`): deleted should the projection have read it. */
export interface SuppressedRow {
  readonly streamSeq: number;
  /** Its input (XREF_IN). */
  readonly seq: number;
  readonly eventId: string;
}

/** The read model's part of a forget's receipt: rows deleted per table, and the user's rows counted again after (0). */
export interface ReadModelReceipt {
  readonly request: string;
  readonly deleted: Readonly<Record<string, number>>;
  readonly remaining: number;
  readonly at: string;
}

/**
 * What the projection writes in one transaction: the rows read from each stream since the last
 * batch, and each stream's new position. Every row is keyed (event seq, output id, error id), so a
 * batch applied again, wholly or in part, changes nothing. The retractions of the groups stream
 * are applied before its resolutions (a resolution retracted in the same batch is not written; a
 * later one of the same event and user, placed again, takes the place of the one retracted), each
 * once (keyed by its output id). The unlinks of the audit stream end their identifiers' links in
 * the stream's order (before the batch's later link records are written); its forgets and
 * suppressed events are applied after the rows (so rows of the same batch are erased too), a
 * forget once per request (its receipt says it was).
 */
export interface ProjectionBatch extends ProjectionRows {
  readonly positions: readonly StreamPosition[];
  readonly retractions?: readonly RetractionRow[];
  readonly forgets?: readonly ForgetRow[];
  readonly suppressed?: readonly SuppressedRow[];
  readonly unlinks?: readonly UnlinkRow[];
}

/** A place in a time order: rows are ordered by (time, sequence). */
export interface Keyset {
  readonly timeMs: number;
  readonly seq: number;
}

export type Order = 'asc' | 'desc';

export interface EventFilter {
  readonly sessionId?: string;
  readonly category?: string;
  readonly name?: string;
  readonly source?: string;
  /** Events resolved to this user. */
  readonly user?: UserRef;
  /** Events carrying this identifier. */
  readonly identifier?: Identifier;
  /** Inclusive bounds on event time (epoch ms). */
  readonly afterMs?: number;
  readonly beforeMs?: number;
}

/** A page of a time-ordered list: `limit` rows at most, strictly past `from` in `order`. */
export interface PageQuery<F> {
  readonly filter: F;
  readonly order: Order;
  readonly limit: number;
  /** The last row of the previous page (exclusive). */
  readonly from?: Keyset;
}

/** An event as the queries answer it: the envelope and where it went. */
export interface StoredEvent {
  readonly seq: number;
  readonly event: XrefEvent;
  readonly source: string;
  readonly timeMs: number;
  /** The user it is resolved to (the first, should there be several), or null. */
  readonly user: UserRef | null;
  readonly via: Identifier | null;
}

/** The list filters of unmatched records, audit records and errors. */
export interface RecordFilter {
  readonly reason?: string;
  /** unmatched, audit: the identifier's kind; errors: the origin (`http`, `publish`, `engine`). */
  readonly kind?: string;
  readonly afterMs?: number;
  readonly beforeMs?: number;
}

export type RecordList = 'unmatched' | 'audit' | 'errors';

export interface StoredRecord {
  /** Its stream sequence. */
  readonly seq: number;
  readonly timeMs: number;
  readonly record: Readonly<Record<string, unknown>>;
}

/** An identifier's current link: the last link or relink of it, by log order. */
export interface LinkFacts {
  readonly identifier: Identifier;
  readonly user: UserRef;
  /** Event time of the event that linked it (null while that event is not projected yet). */
  readonly sinceMs: number | null;
  /** Id of the event that linked it. */
  readonly linkedBy: string;
  /** Its XREF_IN sequence. */
  readonly seq: number;
}

/** What the read model knows of one identifier. */
export interface IdentifierFacts {
  readonly link?: LinkFacts;
  /** Its events neither resolved nor unmatched: waiting in a buffer. */
  readonly buffered: {
    readonly count: number;
    /** Event time of the oldest (null when none). */
    readonly oldestMs: number | null;
    /** The oldest of them, in log order, `limit` at most. */
    readonly events: readonly StoredEvent[];
  };
  /** Its unmatched records, per reason. */
  readonly unmatched: ReadonlyArray<{ readonly reason: string; readonly count: number }>;
}

/** A resolution an unlink took back from a user, as `retracted()` answers it. */
export interface RetractedResolution {
  /** The event's XREF_IN sequence and id (seq null: the resolution was not in the read model when it was retracted). */
  readonly eventSeq: number | null;
  readonly eventId: string;
  /** The identifier it had come through (null: not known). */
  readonly via: Identifier | null;
  /** The unlink input that took it back. */
  readonly unlinkSeq: number;
  /** The output ids: of the resolution taken back, and of the retraction. */
  readonly retracted: string;
  readonly outputId: string;
}

/** A user's resolved events: the newest `limit`, in log order, and how many there are. */
export interface UserEvents {
  readonly total: number;
  readonly events: ReadonlyArray<{ readonly seq: number; readonly event: XrefEvent; readonly via: Identifier }>;
}

/**
 * The active-people counts (docs/activity.md): the counter's image, kept up to date by its
 * changes, each write one transaction with the counter's position (the last input it applied).
 */
export interface ActivityStore {
  /**
   * The counter's image (undefined: nothing counted) and where it is stored; `counts`: each
   * period's counts now as stored (`[zone, period, index, counts]`), which hold what forgotten
   * people counted, their rows gone (ActivityCounter.adoptCounts).
   */
  load(): Promise<{ mark: ActivityMark; state?: CounterState; counts?: StoredCounts }>;
  /** Its scalars only (the columns, zones, and each table's bounds): what an answer reads first. */
  scalars(): Promise<{ seq: number; scalars: CounterScalars } | undefined>;
  /** The counts of one zone × period kind over the periods [from, to). */
  counts(range: CountsRange): Promise<ReadonlyMap<number, PeriodCounts>>;
  /**
   * The events after `afterSeq` through `toSeq`, `limit` at most, with what `features` reads of
   * them (as stored, or from their bodies when stored under another config or not at all), and
   * the resolutions those inputs decided and took back.
   */
  inputs(afterSeq: number, toSeq: number, limit: number, features: FeatureRules): Promise<ActivityInputs>;
  /** The last input whose rows `inputs` reads (its event, the resolutions it decided, the retractions it made or those of resolutions it decided): 0 for none. */
  lastInput(): Promise<number>;
  /**
   * Writes the counter's changes since `from` (the mark it was loaded or last written at) and
   * its position `seq`, in one transaction, and resolves true; false, writing nothing, when the
   * stored mark is not `from` (the counts were deleted, or written by another, meanwhile).
   * XREF_FENCED, writing nothing, unless `owner` holds the claim.
   */
  write(changes: CounterChanges, from: ActivityMark, seq: number, owner: string): Promise<boolean>;
  /** Deletes every count (counted under another config, to be counted again); XREF_FENCED unless `owner` holds the claim. */
  reset(owner: string): Promise<void>;
}

export interface ReadModelStore {
  /** `sqlite` or `postgres`: for logs and reports. */
  readonly dialect: 'sqlite' | 'postgres';
  /** Where it is: `sqlite:<path>` (`sqlite::memory:`), or the PostgreSQL URL (never logged: it may hold a password). */
  readonly url: string;
  /** The active-people counts, in the same database. */
  readonly activity: ActivityStore;
  /** Applies the migrations not applied yet, in version order, each in its own transaction. */
  migrate(): Promise<void>;
  /** The schema version now in force (the highest migration applied). */
  schemaVersion(): Promise<number>;
  /**
   * This database's id: random, made by the first migration and kept. The projection names its
   * durable consumers after it, so two databases fed from one NATS never share (or delete) one.
   */
  instanceId(): Promise<string>;

  // --- the projection ---------------------------------------------------------------------------

  /**
   * Takes (or renews) the right to write, for `ttlMs` from now: true when `owner` holds it, false
   * while another owner's claim is in force. One projection writes into a database at a time.
   */
  claim(owner: string, ttlMs: number): Promise<boolean>;
  /** Gives the claim up (only if `owner` holds it). */
  release(owner: string): Promise<void>;
  /** Each stream's position (streams never applied are absent). */
  positions(): Promise<ReadonlyMap<ProjectedStream, StreamPosition>>;
  /**
   * Writes the batch in one transaction: rows inserted unless their key is there already, the
   * identifiers' current links brought up to date from the audit rows (a link or relink with a
   * higher event seq wins), positions moved forward only (never back). Rejects with XREF_FENCED,
   * writing nothing, unless `owner` holds the claim. Resolves whether every event and resolution
   * of the batch was stored (false: some were there already, or it cannot tell which).
   */
  apply(batch: ProjectionBatch, owner: string): Promise<boolean>;
  /**
   * Deletes, in one transaction, every row read from `streams` and their positions (a stream
   * that was made again is read anew). Rejects with XREF_FENCED unless `owner` holds the claim.
   * Receipts of forgets stay: a forget read again finds its receipt and is not applied twice.
   */
  resetStreams(streams: readonly ProjectedStream[], owner: string): Promise<void>;

  // --- forgetting a user (docs/read-model.md) ---------------------------------------------------

  /** The distinct ids of the users of `kind` the read model holds (resolutions, links): where a forget looks for its user by hashing. */
  userIds(kind: string): Promise<string[]>;
  /** The identifiers linked to a user and those its events carry: where a forget looks for the user's cluster by hashing. */
  userIdentifiers(user: UserRef): Promise<Identifier[]>;
  /** The values of the linked identifiers of `kind`: where an unlink looks for its identifier by hashing. */
  linkedValues(kind: string): Promise<string[]>;
  /** The read model's receipt of a forget request, once applied. */
  erasure(request: string): Promise<ReadModelReceipt | undefined>;

  // --- the queries ------------------------------------------------------------------------------

  /** The XREF_IN position: the last input projected (0: none). */
  watermark(): Promise<number>;
  /** A page of events matching every field of the filter, ordered by (event time, seq). */
  events(query: PageQuery<EventFilter>): Promise<StoredEvent[]>;
  /** One event by id. */
  event(id: string): Promise<StoredEvent | undefined>;
  /** A user's resolved events: the newest `limit` by log order, returned in log order. */
  userEvents(user: UserRef, limit: number): Promise<UserEvents>;
  /** The identifiers linked to a user now, in the order they were linked. */
  userLinks(user: UserRef): Promise<LinkFacts[]>;
  /** What unlinks took back from a user, in the order they did (unlink input, then event seq). */
  retracted(user: UserRef): Promise<RetractedResolution[]>;
  /** What is known of an identifier; `limit`: the most buffered events listed. */
  identifier(identifier: Identifier, limit: number): Promise<IdentifierFacts>;
  /** A page of unmatched records, audit records or errors, ordered by (time, stream seq). */
  records(list: RecordList, query: PageQuery<RecordFilter>): Promise<StoredRecord[]>;
  /** Rows per table, for `xref project --rebuild`'s summary and tests. */
  counts(): Promise<Readonly<Record<'events' | 'resolutions' | 'unmatched' | 'audit' | 'errors' | 'links', number>>>;

  /**
   * Every row of every table in a canonical form (sorted by key, JSON values parsed): what tests
   * compare to show a rebuild gives the same database.
   */
  dump(): Promise<Readonly<Record<string, readonly unknown[]>>>;

  close(): Promise<void>;
}
