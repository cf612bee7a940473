/**
 * The logger backend: writes each event as one pino JSON line, `{ …, "event": { … }, "msg": <name> }`.
 * An event whose JSON is over `maxEventSize` bytes is not written: it is counted as dropped
 * (`too_large`) and reported to onDrop a moment later (never inside `emit`). After `close()`, an
 * event is not written: it is dropped as `closed`.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, LimitExceededError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { DropReports } from './drop-reports.ts';
import type { Backend, BackendHost, BackendStats, OnDrop, TrackerEvent } from './types.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerBackendOptions {
  /** Where to write (default: the logger its host gives it, a child of the tracker's logger). */
  logger?: Logger;
  /** The level of each line (default `info`). */
  level?: LogLevel;
  /** The largest event written, as UTF-8 bytes of its JSON (default 32 KiB, the engine's own limit). */
  maxEventSize?: number;
  /** Told of every event dropped as `too_large` (besides the tracker's onDrop). */
  onDrop?: OnDrop;
}

export const DEFAULT_MAX_EVENT_SIZE = 32 * 1024;

export function loggerBackend(options: LoggerBackendOptions = {}): Backend {
  const level = options.level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new InvalidConfigError('loggerBackend.level', level, `must be one of ${LOG_LEVELS.join(', ')}`);
  const maxEventSize = options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE;
  if (!Number.isInteger(maxEventSize) || maxEventSize <= 0) throw new InvalidConfigError('loggerBackend.maxEventSize', maxEventSize, 'must be a positive integer (bytes)');
  if (options.onDrop !== undefined && typeof options.onDrop !== 'function') throw new InvalidConfigError('loggerBackend.onDrop', options.onDrop, 'must be a function');
  let host: BackendHost | undefined;
  let logger: Logger | undefined = options.logger;
  let closed = false;
  const stats: BackendStats = { sent: 0, failed: 0, dropped: 0, pending: 0, droppedBy: {} };
  const drops = new DropReports(
    () => [options.onDrop, host?.onDrop],
    () => logger ?? componentLogger('tracker'),
  );

  const tooLarge = (event: TrackerEvent, bytes: number) => {
    stats.dropped++;
    stats.droppedBy.too_large = (stats.droppedBy.too_large ?? 0) + 1;
    (logger ?? componentLogger('tracker')).warn({ event: { id: event.id, name: event.name }, bytes, maxEventSize }, 'event over maxEventSize: dropped (too_large)');
    drops.add([event], 'too_large', new LimitExceededError('event', bytes, maxEventSize, 'bytes'));
  };

  return {
    attach(mountedOn: BackendHost): void {
      host = mountedOn;
      logger = options.logger ?? mountedOn.logger;
    },
    send(event: TrackerEvent): void {
      if (closed) {
        stats.dropped++;
        stats.droppedBy.closed = (stats.droppedBy.closed ?? 0) + 1;
        drops.add([event], 'closed');
        return;
      }
      logger ??= componentLogger('tracker').child({ backend: 'logger' });
      const json = JSON.stringify(event);
      // UTF-8 takes 1 to 3 bytes per UTF-16 unit: count bytes only when the length cannot tell
      const bytes = json.length > maxEventSize || json.length * 3 <= maxEventSize ? json.length : Buffer.byteLength(json);
      if (bytes > maxEventSize) return tooLarge(event, Buffer.byteLength(json));
      logger[level]({ event }, event.name);
      stats.sent++;
    },
    stats(): BackendStats {
      return { ...stats, droppedBy: { ...stats.droppedBy } };
    },
    /** Nothing is held: tells the onDrop listeners of the drops so far. */
    async flush(): Promise<void> {
      drops.drain();
    },
    /** Later events are dropped as `closed`; tells the onDrop listeners of the drops so far. */
    async close(): Promise<void> {
      closed = true;
      drops.drain();
    },
  };
}
