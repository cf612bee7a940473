/**
 * `xref/tracker/nats`: the tracker's NATS backend, under its own subpath so that `xref/tracker`
 * never loads the NATS client unless this backend is used.
 *
 *   import { natsBackend } from 'xref/tracker/nats';
 *   createTracker({ backends: { xref: natsBackend({ servers: 'nats://127.0.0.1:4222', subject: 'xref.in.shop' }) }, … });
 */
export { natsBackend, NatsBackend, NATS_DEFAULTS } from './nats-backend.ts';
export type { NatsBackendOptions } from './nats-backend.ts';
export type { DeliveryOptions, OverflowPolicy } from './delivery-queue.ts';
