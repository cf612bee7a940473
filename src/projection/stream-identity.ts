/**
 * Which streams the projection reads, what its durable consumers are called, and how it tells one
 * incarnation of a stream from another: `xref replay --republish` deletes the output streams and
 * makes them again, and their sequences restart at 1, so a position stored for the old one means
 * nothing for the new one. Pure: no I/O.
 */
import type { StreamInfo } from '@nats-io/jetstream';
import { CONSUMERS, STREAMS, subjects } from '../nats/subjects.ts';
import type { ProjectedStream, StreamPosition } from './read-model.ts';

/** A projected stream's name on the server and the subjects read from it. */
export interface StreamNames {
  readonly stream: string;
  readonly filter: string;
  /**
   * Read headers only: a resolved event's `Xref-Resolution` header is all the projection keeps of
   * it (its event is XREF_IN's); one without the header is read whole, by sequence.
   */
  readonly headersOnly?: boolean;
}

export const PROJECTED_STREAM_NAMES: Readonly<Record<ProjectedStream, StreamNames>> = {
  in: { stream: STREAMS.in, filter: subjects.inAll },
  groups: { stream: STREAMS.groups, filter: subjects.groupsAll, headersOnly: true },
  unmatched: { stream: STREAMS.unmatched, filter: subjects.unmatchedAll },
  audit: { stream: STREAMS.audit, filter: subjects.auditAll },
  errors: { stream: STREAMS.errors, filter: subjects.errorsAll },
};


/**
 * The projection's consumer name for the database `instanceId` (on every stream it reads):
 * `xref-projection-<instance id>`, so that two databases fed from one NATS never share, nor delete,
 * each other's durable consumers (see `isDurableOf`). Characters a consumer name cannot hold
 * become `_`.
 */
export function projectionConsumer(instanceId: string): string {
  return `${CONSUMERS.projection}-${instanceId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/** One incarnation of a stream, as the server describes it now. */
export interface StreamIncarnation {
  /** Its creation time (ISO 8601, as the server reports it): another one means the stream was made again. */
  readonly created: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

export function incarnationOf(info: Pick<StreamInfo, 'created' | 'state'>): StreamIncarnation {
  return { created: info.created, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
}

/**
 * Why `position` (what the read model holds of a stream) does not belong to the stream as it is
 * `now`, or undefined when it does: another creation time (the stream was deleted and made
 * again), or fewer messages than were projected (sequences restarted). A stream purged keeps its
 * creation time and its sequences go on: its position still holds.
 */
export function staleBecause(position: Pick<StreamPosition, 'seq' | 'created'> | undefined, now: StreamIncarnation): string | undefined {
  if (position === undefined) return undefined;
  if (position.created !== now.created) return `it was made again (created ${now.created}; the rows are of the one created ${position.created})`;
  if (now.lastSeq < position.seq) return `its sequences restarted (it ends at ${now.lastSeq}; the rows reach ${position.seq})`;
  return undefined;
}
