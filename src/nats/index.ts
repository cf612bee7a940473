/**
 * `xref/nats`: the streaming engine on NATS JetStream, and the durable-consumer runtime it runs
 * on, with each port's JetStream adapter beside its in-memory one (the pairs pass one contract
 * suite each). A new consumer of the log (a projection, a counter) is a `DurableConsumer` with
 * its own name, handler and checkpoint.
 */
export { EngineService, ENGINE_CONSUMER, isEngineConsumer } from '../service/engine-service.ts';
export type { EngineServiceOptions, EngineServiceStats } from '../service/engine-service.ts';
export { EngineRunner } from '../service/engine-runner.ts';
export type { EngineRole, EngineRunnerOptions } from '../service/engine-runner.ts';
export { replayLog, compareStates } from '../service/replay.ts';
export type { ReplayOptions, ReplayResult, StateDifference } from '../service/replay.ts';
export { DurableConsumer } from '../runtime/durable-consumer.ts';
export type { ConsumerStats, DurableConsumerOptions, InputHandler, OutputMessage, OutputPublisher } from '../runtime/durable-consumer.ts';
export type { InputDelivery, InputLog, InputMessage, LogGap } from '../runtime/input-log.ts';
export { MemoryInputLog } from '../runtime/memory-input-log.ts';
export { AckLedger } from '../runtime/ack-ledger.ts';
export { Checkpointer } from '../runtime/checkpointer.ts';
export type { CheckpointAt, CheckpointWriter } from '../runtime/checkpointer.ts';
export { JetStreamInputLog } from './jetstream-input-log.ts';
export type { JetStreamInputLogOptions } from './jetstream-input-log.ts';
export type { StateStore, LoadedState, WriteOptions } from '../engine/state-store.ts';
export { FencedError } from '../engine/state-store.ts';
export { MemoryStateStore } from '../engine/memory-state-store.ts';
export { NatsStateStore, KvSnapshotStore } from './state-store.ts';
export { JetStreamPublisher, PublishRejectedError } from './publisher.ts';
export { JetStreamSink } from './jetstream-sink.ts';
export type { JetStreamSinkOptions } from './jetstream-sink.ts';
export { natsReadiness } from './readiness.ts';
export type { NatsReadinessOptions } from './readiness.ts';
export { Lease } from './lease.ts';
export { connectNats } from './connection.ts';
export { ensureTopology } from './topology.ts';
export { encodeToken, decodeToken, subjects, STREAMS, BUCKETS } from './subjects.ts';
