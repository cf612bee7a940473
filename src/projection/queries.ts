/**
 * The answers of the query API (src/http/query-routes.ts) and of `xref events`, `who` and `user`
 * (src/cli/query-commands.ts), from typed queries (query-params.ts) and the read model's port.
 * Every answer is the JSON the API sends, so the commands print the same thing whether they read
 * the database or a server.
 */
import type { Logger } from 'pino';
import { resolveActivityConfig } from '../activity/activity-config.ts';
import type { ActivitySeries, SeriesRequest } from '../activity/activity-series.ts';
import { periodStart } from '../activity/period-index.ts';
import type { Config } from '../domain/config.ts';
import type { XrefEvent } from '../domain/envelope.ts';
import { XrefError, quote } from '../domain/errors.ts';
import type { Identifier } from '../domain/identifiers.ts';
import type { UserRef } from '../engine/outputs.ts';
import { type EventsQuery, encodeCursor } from './query-params.ts';
import type { EventFilter, PageQuery, ReadModelStore, RecordFilter, RecordList, StoredEvent } from './read-model.ts';

export interface QueryOptions {
  /** The identity config: internal kinds, buffer bounds (when buffered events expire). */
  readonly config: Config;
  /** The most events a user document holds (settings.userEventsCap). */
  readonly userEventsCap: number;
  readonly logger: Logger;
  /** How often a `min_seq` wait looks at the watermark again (default 20 ms). */
  readonly watermarkPollMs?: number;
}

/** The most buffered events an identifier's answer lists. */
export const BUFFERED_LISTED = 100;

/** An event as every answer gives it: the envelope, where it came in, its input sequence, and where it went. */
export type EventJson = XrefEvent & {
  readonly source: string;
  readonly seq: number;
  readonly user: UserRef | null;
  readonly via: Identifier | null;
};

/** `GET /v1/events`. */
export interface EventsAnswer {
  readonly events: EventJson[];
  /** The cursor of the next page; null on the last. */
  readonly next: string | null;
  /** The last input sequence projected when the page was read. */
  readonly watermark: number;
}

/** `GET /v1/activity`: the series, and the last input counted. */
export interface ActivityAnswer extends ActivitySeries {
  /** The start of the last closed period (its counts frozen), or null. */
  readonly closedThrough: string | null;
  /** The last input counted. */
  readonly watermark: number;
}

/** `GET /v1/events/:id`. */
export interface EventAnswer {
  readonly event: EventJson;
}

/** `GET /v1/users/:kind/:id`. */
export interface UserAnswer {
  readonly user: UserRef;
  /** The pygrouper document of this user alone: `{kind: {id: {idKind: {value: [events in log order]}}}}`. */
  readonly document: Record<string, Record<string, Record<string, Record<string, XrefEvent[]>>>>;
  readonly identifiers: Array<{ readonly kind: string; readonly value: string; readonly since: string | null; readonly linked_by: string }>;
  readonly counts: { readonly events: number; readonly identifiers: number };
  /** More events than the cap: the document holds the newest; `/v1/events?user=` pages through all. */
  readonly truncated: boolean;
}

export type IdentifierStatus = 'linked' | 'buffering' | 'unmatched' | 'unknown';

/** `GET /v1/identifiers/:kind/:value`: the status, and every fact known beside it. */
export interface IdentifierAnswer {
  readonly identifier: Identifier;
  readonly status: IdentifierStatus;
  /** linked: whose it is, since when (event time) and which event linked it. */
  readonly user?: UserRef;
  readonly since?: string | null;
  readonly linked_by?: string | null;
  /** Events waiting in a buffer for a user. */
  readonly buffered?: { readonly count: number; readonly oldest: string | null; readonly expires: string | null; readonly events: EventJson[] };
  /** Events that left a buffer unplaced, per reason. */
  readonly unmatched?: ReadonlyArray<{ readonly reason: string; readonly count: number }>;
}

/** `GET /v1/unmatched`, `/v1/audit`, `/v1/errors`: the records as published. */
export interface RecordsAnswer {
  readonly records: Array<Readonly<Record<string, unknown>>>;
  readonly next: string | null;
}

/** The read model did not reach `min_seq` in time: a 409 naming the watermark. */
export class NotCaughtUpError extends XrefError {
  constructor(
    readonly watermark: number,
    readonly minSeq: number,
    waitedMs: number,
  ) {
    super('XREF_NOT_CAUGHT_UP', `the read model is at input ${watermark}, not yet at min_seq ${minSeq}, after ${waitedMs} ms: ask again, or with a longer wait_ms (at most 10000)`, {
      field: 'min_seq',
    });
  }
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A stored event as the answers give it. */
export function eventJson(stored: StoredEvent): EventJson {
  return { ...stored.event, source: stored.source, seq: stored.seq, user: stored.user, via: stored.via };
}

/** The answers of the query API, from the read model. */
export class ReadModelQueries {
  private readonly pollMs: number;

  constructor(
    readonly store: ReadModelStore,
    readonly options: QueryOptions,
  ) {
    this.pollMs = options.watermarkPollMs ?? 20;
  }

  /** The internal kinds (users are one of them and an id). */
  get internal(): readonly string[] {
    return this.options.config.internal;
  }

  /** A page of events; with `minSeq`, once the read model holds that input (or a NotCaughtUpError after `waitMs`). */
  async events(query: EventsQuery): Promise<EventsAnswer> {
    const watermark = query.minSeq === undefined ? await this.store.watermark() : await this.caughtUp(query.minSeq, query.waitMs);
    const { rows, next } = await this.page('events', query.page, (q) => this.store.events(q), (row) => ({ timeMs: row.timeMs, seq: row.seq }));
    return { events: rows.map(eventJson), next, watermark };
  }

  /** One event and its resolution; XREF_NOT_FOUND when the read model does not hold it. */
  async event(id: string): Promise<EventAnswer> {
    const stored = await this.store.event(id);
    if (stored === undefined) throw new XrefError('XREF_NOT_FOUND', `event ${quote(id)} is not known to the read model (never accepted, rejected, or not projected yet)`, { field: 'id' });
    return { event: eventJson(stored) };
  }

  /**
   * A user's document (their newest `userEventsCap` events, grouped as `groupEvents()` groups them)
   * and linked identifiers. XREF_NOT_FOUND when the read model knows neither events nor links of them.
   */
  async user(user: UserRef): Promise<UserAnswer> {
    const [{ total, events }, links] = await Promise.all([this.store.userEvents(user, this.options.userEventsCap), this.store.userLinks(user)]);
    if (total === 0 && links.length === 0) {
      throw new XrefError('XREF_NOT_FOUND', `user ${user.kind} ${quote(user.id)} is not known to the read model: no event was resolved to them and no identifier is linked to them`, { field: 'id' });
    }
    const byKind: Record<string, Record<string, XrefEvent[]>> = {};
    for (const { event, via } of events) ((byKind[via.kind] ??= {})[via.value] ??= []).push(event);
    return {
      user,
      document: { [user.kind]: { [user.id]: byKind } },
      identifiers: links.map((link) => ({ kind: link.identifier.kind, value: link.identifier.value, since: iso(link.sinceMs), linked_by: link.linkedBy })),
      counts: { events: total, identifiers: links.length },
      truncated: total > events.length,
    };
  }

  /**
   * Who an identifier is: `linked` (to a user), else `buffering` (events wait for one), else
   * `unmatched` (events left unplaced), else `unknown`; the facts of the other statuses ride
   * along when there are any. An internal id is linked to itself once its user is known.
   */
  async identifier(identifier: Identifier): Promise<IdentifierAnswer> {
    const facts = await this.store.identifier(identifier, BUFFERED_LISTED);
    const internal = this.internal.includes(identifier.kind);
    const linked = internal ? await this.selfLink({ kind: identifier.kind, id: identifier.value }) : facts.link && { user: facts.link.user, since: iso(facts.link.sinceMs), linked_by: facts.link.linkedBy };
    const { buffered } = facts;
    const buffering = !internal && buffered.count > 0;
    const status: IdentifierStatus = linked !== undefined ? 'linked' : buffering ? 'buffering' : facts.unmatched.length > 0 ? 'unmatched' : 'unknown';
    return {
      identifier,
      status,
      ...(linked ?? {}),
      ...(buffering
        ? {
            buffered: {
              count: buffered.count,
              oldest: iso(buffered.oldestMs),
              expires: iso(buffered.oldestMs === null ? null : buffered.oldestMs + this.options.config.buffer.ttlMs),
              events: buffered.events.map(eventJson),
            },
          }
        : {}),
      ...(facts.unmatched.length > 0 ? { unmatched: facts.unmatched.map(({ reason, count }) => ({ reason, count })) } : {}),
    };
  }

  /** A page of unmatched records, audit records or errors. */
  /**
   * `GET /v1/activity`: active people per period, as the projection counted them (before it
   * counted anything: every period 0, under the config's buckets and zones).
   */
  async activity(request: SeriesRequest): Promise<ActivityAnswer> {
    // loaded at the first such answer (with its date library), not when the queries are
    const { configuredSource, countedSource, planSeries, seriesOf } = await import('../activity/activity-series.ts');
    const stored = await this.store.activity.scalars();
    const source = stored === undefined ? configuredSource(this.options.config.activity ?? resolveActivityConfig({})) : countedSource(stored.scalars);
    const plan = planSeries(request, source);
    const counts = stored === undefined ? new Map() : await this.store.activity.counts({ zone: plan.zone, period: plan.period, from: plan.from, to: plan.to });
    const closedThrough = Number.isFinite(plan.closedThrough) ? periodStart(plan.period, plan.closedThrough) : null;
    return { ...seriesOf(plan, source.columns.length, (index) => counts.get(index) ?? {}), closedThrough, watermark: stored?.seq ?? 0 };
  }

  async records(list: RecordList, query: PageQuery<RecordFilter>): Promise<RecordsAnswer> {
    const { rows, next } = await this.page(list, query, (q) => this.store.records(list, q), (row) => ({ timeMs: row.timeMs, seq: row.seq }));
    return { records: rows.map((row) => row.record), next };
  }

  /**
   * One page: a row more than asked tells whether there is a next page, whose cursor is the
   * keyset of the page's last row.
   */
  private async page<F extends EventFilter | RecordFilter, R>(
    list: 'events' | RecordList,
    query: PageQuery<F>,
    read: (query: PageQuery<F>) => Promise<R[]>,
    keyset: (row: R) => { timeMs: number; seq: number },
  ): Promise<{ rows: R[]; next: string | null }> {
    const rows = await read({ ...query, limit: query.limit + 1 });
    if (rows.length <= query.limit) return { rows, next: null };
    const shown = rows.slice(0, query.limit);
    return { rows: shown, next: encodeCursor(list, query, keyset(shown[shown.length - 1]!)) };
  }

  /** An internal id's user as a link to itself: since its first event (by event time), when the read model knows the user. */
  private async selfLink(user: UserRef): Promise<{ user: UserRef; since: string | null; linked_by: string | null } | undefined> {
    const [first] = await this.store.events({ filter: { user }, order: 'asc', limit: 1 });
    if (first !== undefined) return { user, since: iso(first.timeMs), linked_by: first.event.id };
    const links = await this.store.userLinks(user);
    return links.length > 0 ? { user, since: null, linked_by: null } : undefined;
  }

  /** Waits until the watermark reaches `minSeq`, looking every `pollMs`; its value then, or a NotCaughtUpError after `waitMs`. */
  private async caughtUp(minSeq: number, waitMs: number): Promise<number> {
    const started = Date.now();
    for (;;) {
      const watermark = await this.store.watermark();
      if (watermark >= minSeq) return watermark;
      const waited = Date.now() - started;
      if (waited >= waitMs) throw new NotCaughtUpError(watermark, minSeq, waited);
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.pollMs, waitMs - waited)));
    }
  }
}
