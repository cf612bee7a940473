import { XrefError } from '../domain/errors.ts';
import type { CheckpointWriteOptions } from '../runtime/checkpointer.ts';
import type { StoredCluster } from './clusters.ts';
import type { Checkpoint } from './engine.ts';
import type { StateImage } from './state-image.ts';

/**
 * Where the engine's durable state lives: the fold of its checkpoints. The service and `xref
 * replay` use JetStream KV (src/nats/state-store.ts); the in-memory adapter
 * (memory-state-store.ts) keeps the same records and rules, for tests and the offline mode.
 *
 * A checkpoint is in force once its meta record is written, last; what an interrupted checkpoint
 * or a fenced writer wrote is rolled back at the next load (docs/recovery.md).
 */
export interface StateStore {
  /**
   * The lease epoch this store writes under (0: no lease). Set before `load()`: a new epoch fences
   * the one the loaded meta record was written under.
   */
  epoch: number;
  /** The state of the last finished checkpoint (an empty state when there is none). */
  load(): Promise<LoadedState>;
  /** The whole state of the last finished checkpoint, snapshots included (for `replay --verify`). */
  loadImage(): Promise<StateImage>;
  /**
   * Makes `image` the live state: writes it whole as a checkpoint at `image.seq`, and tombstones
   * for whatever the live state held that the image does not (e.g. after `xref replay`).
   */
  replaceWith(image: StateImage): Promise<void>;
  /**
   * Writes a checkpoint: its records, then the meta record that puts them in force. Rejects with
   * FencedError when the writer lost its lease (`mayWrite`) or another epoch wrote meanwhile.
   */
  write(checkpoint: CheckpointWrite, options?: WriteOptions): Promise<void>;
  /** One actor's snapshot as the checkpoint in force left it (undefined: none); after `load()`. */
  snapshot(kind: 'i' | 'u', address: string): Promise<unknown>;
}

/** A checkpoint, and the links it removes (a state replaced whole drops what it no longer holds). */
export type CheckpointWrite = Checkpoint;

export interface LoadedState {
  seq: number;
  watermark: number;
  links: Map<string, { user: string; seq: number }>;
  clusters: StoredCluster[];
  identifierAddresses: string[];
  userAddresses: string[];
}

/**
 * How a checkpoint is written: the runtime's options (src/runtime/checkpointer.ts), each with a
 * default (`xref replay` writes at once, with nothing else to wait for), and who writes.
 */
export interface WriteOptions extends Partial<CheckpointWriteOptions> {
  /** Who writes (named in the records' dedup ids, which are unique to each write). */
  readonly writer?: string;
}

/** Records a checkpoint write sends between two yields (and between two `mayWrite` questions). */
export const WRITE_SLICE = 100;

/** A checkpoint not written because its writer no longer holds the lease. */
export class FencedError extends XrefError {
  constructor() {
    super('XREF_FENCED', 'this checkpoint is not written: the engine lease is held by another process');
  }
}
