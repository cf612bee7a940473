/**
 * The JetStream streams and KV buckets of docs/architecture.md (NATS layout), applied idempotently at start by
 * src/nats/topology.ts. Only nats-server 2.9 features: one subject filter, no transforms.
 */
import { BUCKETS, STREAMS, subjects } from '../src/nats/subjects.ts';

export interface StreamDefinition {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly description: string;
  /** 0 = keep forever. */
  readonly maxAgeMs: number;
  /** Same Nats-Msg-Id within this window = one message. */
  readonly duplicateWindowMs: number;
}

export interface BucketDefinition {
  readonly bucket: string;
  readonly description: string;
  /** Revisions kept per key: a checkpoint interrupted half-way is undone from the previous one. */
  readonly history: number;
}

const TWO_MINUTES = 2 * 60 * 1000;

export const STREAM_DEFINITIONS: readonly StreamDefinition[] = [
  { name: STREAMS.in, subjects: [subjects.inAll, subjects.ctlAll], description: 'every accepted event and control input: the log', maxAgeMs: 0, duplicateWindowMs: TWO_MINUTES },
  { name: STREAMS.groups, subjects: [subjects.groupsAll], description: 'resolved events, one subject per user', maxAgeMs: 0, duplicateWindowMs: TWO_MINUTES },
  { name: STREAMS.unmatched, subjects: [subjects.unmatchedAll], description: 'events that left a buffer unlinked', maxAgeMs: 0, duplicateWindowMs: TWO_MINUTES },
  { name: STREAMS.audit, subjects: [subjects.auditAll], description: 'links, relinks, refusals, conflicts', maxAgeMs: 0, duplicateWindowMs: TWO_MINUTES },
  {
    name: STREAMS.errors,
    subjects: [subjects.errorsAll],
    description: 'every rejection: HTTP items, publish lines and inputs the engine refused, one subject per reason',
    maxAgeMs: 0,
    duplicateWindowMs: TWO_MINUTES,
  },
];

export const BUCKET_DEFINITIONS: readonly BucketDefinition[] = [
  { bucket: BUCKETS.links, description: 'the identity graph: third-party id -> user', history: 4 },
  { bucket: BUCKETS.snapshots, description: 'actor snapshots and the engine checkpoint', history: 8 },
  { bucket: BUCKETS.leases, description: 'which process holds a consumer of the log: compare-and-set, renewed by its holder', history: 1 },
  { bucket: BUCKETS.control, description: 'the installation salt, and each control request: a forget tombstone holds hashes only', history: 1 },
];
