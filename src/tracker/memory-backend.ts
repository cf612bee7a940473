/**
 * The memory backend: keeps every event it is given in `.events`, in order, for users' own tests.
 * It keeps no stats of its own: its host counts each event it takes as sent, and after `close()`
 * keeps nothing more: its host counts each later event as dropped (`closed`).
 */
import type { Backend, TrackerEvent } from './types.ts';

export interface MemoryBackend extends Backend {
  /** Every event given so far, oldest first (the objects themselves, as the backend got them). */
  readonly events: TrackerEvent[];
  /** Forgets the events kept so far. */
  clear(): void;
}

export function memoryBackend(): MemoryBackend {
  const events: TrackerEvent[] = [];
  return {
    events,
    send(event: TrackerEvent): void {
      events.push(event);
    },
    clear(): void {
      events.length = 0;
    },
  };
}
