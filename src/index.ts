/**
 * `xref`: the offline library. Groups a log of events by user with the same identity rules as the
 * streaming service, in-process: no NATS, no HTTP server, nothing but xstate loaded. The service
 * parts are their own entry points: `xref/nats` (the streaming engine and its NATS adapters) and
 * `xref/http` (the collector).
 */
export { groupEvents, Grouper, GroupsCollector } from './group.ts';
export type { GroupReport, GroupsDocument, GroupOptions } from './group.ts';
export { IdentityEngine } from './engine/engine.ts';
export type { EngineOptions, EngineStats } from './engine/engine.ts';
export type { AuditRecord, Resolved, Sink, Unmatched, UserRef } from './engine/outputs.ts';
export { MemorySnapshotStore } from './engine/snapshot-store.ts';
export type { SnapshotStore } from './engine/snapshot-store.ts';
export { defaultConfig, resolveConfig } from './domain/config.ts';
export type { Config, ConfigInput, JsonSchema, RelinkPolicy, UnknownTypes } from './domain/config.ts';
export { validateEvent } from './domain/envelope.ts';
export type { XrefEvent } from './domain/envelope.ts';
export { defaultLimits } from './domain/limits.ts';
export type { Limits } from './domain/limits.ts';
export { XrefError, InvalidEventError, InvalidConfigError, LimitExceededError, ERROR_CATALOGUE, isXrefError, statusOf } from './domain/errors.ts';
export type { ErrorCode } from './domain/errors.ts';
export { BUILTIN_JUNK } from './domain/identifiers.ts';
export type { Identifier } from './domain/identifiers.ts';
export { createIdentifierMachine } from '../actors/identifier.machine.ts';
export { createUserMachine } from '../actors/user.machine.ts';
