/**
 * Segment tracking API → xref envelope (docs/architecture.md, the event envelope), as a pure function: no I/O, no clock (the
 * time a request was received is an argument), ids from an injectable generator.
 *
 * | Segment                         | envelope                                                        |
 * | ------------------------------- | --------------------------------------------------------------- |
 * | messageId                       | id (a random UUID when absent)                                  |
 * | anonymousId                     | ids.anonymous_id (third-party)                                  |
 * | userId                          | ids.<user kind> (internal; default user_id)                     |
 * | alias previousId                | ids.anonymous_id (or ids.previous_id, see `aliasIds`)           |
 * | track event / type              | name (track: the event; otherwise identify/page/screen/group/alias) |
 * | properties / traits             | data (page/screen add `name`; group adds `groupId`)             |
 * | category                        | category                                                        |
 * | context (+ the batch's context) | context                                                         |
 * | timestamp / sentAt / originalTimestamp / receivedAt | timestamp (see `eventTimestamp`)            |
 */
import { randomUUID } from 'node:crypto';
import Type, { type Static } from 'typebox';
import type { XrefEvent } from '../domain/envelope.ts';
import { InvalidEventError, LimitExceededError, XrefError, quote } from '../domain/errors.ts';
import type { Limits } from '../domain/limits.ts';
import { checker } from './schema.ts';

export const SEGMENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type SegmentType = (typeof SEGMENT_TYPES)[number];

/** The third-party kinds Segment ids map to. The user kind is a setting (XREF_SEGMENT_USER_KIND). */
export const SEGMENT_KINDS = {
  /** Segment's anonymousId (a browser or device id). */
  anonymous: 'anonymous_id',
  /** An alias's previousId when it is not the message's anonymousId: an earlier user id. */
  previous: 'previous_id',
} as const;

export const DEFAULT_SEGMENT_USER_KIND = 'user_id';

const TIME_TEXT = 'must be an ISO 8601 date-time such as 2021-01-01T09:15:29.243Z';
const IdValue = Type.Union([Type.String(), Type.Integer(), Type.Null()], { description: 'must be a string or an integer' });
const Text = (description: string) => Type.Optional(Type.Union([Type.String(), Type.Null()], { description }));
const JsonObject = Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'must be a JSON object' }));
const Time = Text(TIME_TEXT);

/**
 * One Segment message (track, identify, page, screen, group or alias). Unknown fields are allowed
 * and dropped (Segment clients send `integrations`, `_metadata`, `writeKey`, `options`, …).
 */
export const SegmentMessageSchema = Type.Object(
  {
    type: Type.Optional(Type.Unknown()),
    messageId: Type.Optional(Type.Union([Type.String(), Type.Integer(), Type.Null()], { description: 'must be a string' })),
    userId: Type.Optional(IdValue),
    anonymousId: Type.Optional(IdValue),
    previousId: Type.Optional(IdValue),
    groupId: Type.Optional(IdValue),
    event: Text('must be a non-empty string (the event name)'),
    name: Text('must be a string'),
    category: Text('must be a string'),
    properties: JsonObject,
    traits: JsonObject,
    context: JsonObject,
    integrations: JsonObject,
    timestamp: Time,
    originalTimestamp: Time,
    sentAt: Time,
    receivedAt: Time,
  },
  { additionalProperties: true, description: 'must be a JSON object (a Segment message)' },
);
export type SegmentMessage = Static<typeof SegmentMessageSchema>;

/** The body of `POST /v1/batch`. */
export const SegmentBatchSchema = Type.Object(
  {
    batch: Type.Array(Type.Unknown(), { description: 'is required and must be an array of Segment messages' }),
    sentAt: Time,
    context: JsonObject,
    integrations: JsonObject,
    writeKey: Type.Optional(Type.String({ description: 'must be a string' })),
  },
  { additionalProperties: true, description: 'must be a JSON object { "batch": [ messages ] }' },
);
export type SegmentBatch = Static<typeof SegmentBatchSchema>;

const messageChecker = checker(SegmentMessageSchema, 'XREF_INVALID_EVENT');

export interface SegmentOptions {
  /** The internal kind `userId` maps to (default user_id). */
  readonly userKind: string;
  readonly limits: Limits;
  /** Id of a message without messageId (default: a random UUID). */
  readonly newId?: () => string;
}

/** What the request around a message says: when it arrived, and the batch's own fields. */
export interface SegmentRequest {
  /** Epoch ms when the server received the request. */
  readonly receivedAt: number;
  /** The batch's `sentAt`, used when a message has none. */
  readonly sentAt?: string | null | undefined;
  /** The batch's `context`, under each message's own. */
  readonly context?: object | null | undefined;
}

const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ISO_LIKE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** An ISO 8601 date-time as epoch ms; no time zone = UTC. undefined when absent (null / ''). */
export function parseSegmentTime(field: string, value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new InvalidEventError(field, value, TIME_TEXT);
  const match = ISO_LIKE.exec(value);
  if (match === null) throw new InvalidEventError(field, value, TIME_TEXT);
  let text = value.replace(' ', 'T');
  if (!text.includes('T')) text += 'T00:00:00Z';
  else if (match[1] === undefined) text += 'Z';
  else if (/[+-]\d{2}$/.test(text)) text += ':00';
  else if (/[+-]\d{4}$/.test(text)) text = `${text.slice(0, -2)}:${text.slice(-2)}`;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new InvalidEventError(field, value, TIME_TEXT);
  return ms;
}

/**
 * The event time, Segment's rule: `timestamp` when given; else, when the message has both
 * `sentAt` (its own or the batch's) and `originalTimestamp`, the client's clock skew corrected:
 * `receivedAt - (sentAt - originalTimestamp)`; else `receivedAt`.
 */
export function eventTimestamp(message: Pick<SegmentMessage, 'timestamp' | 'originalTimestamp' | 'sentAt'>, request: SegmentRequest): string {
  // fast path: already UTC with milliseconds, as JSON.stringify(new Date()) writes it
  const given = message.timestamp;
  if (typeof given === 'string' && CANONICAL.test(given) && !Number.isNaN(Date.parse(given))) {
    parseSegmentTime('originalTimestamp', message.originalTimestamp); // still refused when malformed
    if (parseSegmentTime('sentAt', message.sentAt) === undefined) parseSegmentTime('sentAt', request.sentAt);
    return given;
  }
  const timestamp = parseSegmentTime('timestamp', message.timestamp);
  const original = parseSegmentTime('originalTimestamp', message.originalTimestamp);
  const sentAt = parseSegmentTime('sentAt', message.sentAt) ?? parseSegmentTime('sentAt', request.sentAt);
  let ms = request.receivedAt;
  if (timestamp !== undefined) ms = timestamp;
  else if (original !== undefined && sentAt !== undefined) ms = request.receivedAt - (sentAt - original);
  const iso = Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : '';
  if (!/^\d{4}-/.test(iso)) {
    const field = timestamp !== undefined ? 'timestamp' : 'originalTimestamp';
    throw new InvalidEventError(field, message[field], 'gives an event time outside the years 0000-9999');
  }
  return iso;
}

/** An identifier field: a string or an integer (→ its decimal string); null or '' = absent. */
function idValue(field: string, value: unknown, limits: Limits): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new InvalidEventError(field, value, 'must be a string or an integer');
    text = String(value);
  } else if (typeof value === 'string') {
    text = value;
  } else {
    throw new InvalidEventError(field, value, 'must be a string or an integer');
  }
  if (text.length > limits.idValueChars) throw new LimitExceededError(field, text.length, limits.idValueChars, 'characters');
  if (!text.isWellFormed()) throw new InvalidEventError(field, text, 'must be well-formed Unicode (it holds a lone surrogate)');
  return text;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function object(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * The identifiers of an alias. Segment's alias says "previousId and userId are one person";
 * previousId is usually the anonymousId the person had before signing up (analytics.js sends
 * `previousId = anonymousId`), so it maps to `anonymous_id`: the anonymous history links to the
 * user. When the message also carries a *different* anonymousId, previousId is an earlier user id:
 * it goes under `previous_id` (a third-party kind, so it never merges two users: docs/architecture.md, identity rules)
 * and the anonymousId keeps its own kind.
 */
export function aliasIds(previousId: string, userId: string, anonymousId: string | undefined, userKind: string): Record<string, string> {
  const ids: Record<string, string> = { [userKind]: userId };
  if (anonymousId !== undefined && anonymousId !== previousId) {
    ids[SEGMENT_KINDS.anonymous] = anonymousId;
    if (previousId !== userId) ids[SEGMENT_KINDS.previous] = previousId;
  } else if (previousId !== userId) {
    ids[SEGMENT_KINDS.anonymous] = previousId;
  }
  return ids;
}

/**
 * One Segment message as an xref event. `type` comes from the route (`/v1/track`, …) or, in a
 * batch, from the message. Throws an XrefError naming the Segment field and the value.
 */
export function segmentToEvent(raw: unknown, type: SegmentType | undefined, request: SegmentRequest, options: SegmentOptions): XrefEvent {
  if (!messageChecker.check(raw)) throw messageChecker.explain(raw);
  const message = raw;
  const kind = type ?? message.type;
  if (!SEGMENT_TYPES.includes(kind as SegmentType)) {
    throw new InvalidEventError('type', kind, `must be one of ${SEGMENT_TYPES.join(', ')}`);
  }
  const { limits, userKind } = options;

  const messageId = idValue('messageId', message.messageId, limits) ?? (options.newId ?? randomUUID)();
  const anonymousId = idValue('anonymousId', message.anonymousId, limits);
  const userId = idValue('userId', message.userId, limits);
  let ids: Record<string, string>;
  if (kind === 'alias') {
    if (userId === undefined) throw new InvalidEventError('userId', message.userId, 'is required for an alias call (the new id; previousId is the old one)');
    const previousId = idValue('previousId', message.previousId, limits);
    if (previousId === undefined) throw new InvalidEventError('previousId', message.previousId, 'is required for an alias call (the id the user had before userId)');
    ids = aliasIds(previousId, userId, anonymousId, userKind);
  } else {
    if (userId === undefined && anonymousId === undefined) {
      throw new XrefError(
        'XREF_INVALID_EVENT',
        `userId or anonymousId is required (a non-empty string or an integer), got userId ${quote(message.userId)} and anonymousId ${quote(message.anonymousId)}`,
        { field: 'userId' },
      );
    }
    ids = {};
    if (anonymousId !== undefined) ids[SEGMENT_KINDS.anonymous] = anonymousId;
    if (userId !== undefined) ids[userKind] = userId;
  }

  let name: string;
  let data: Record<string, unknown> | undefined;
  switch (kind as SegmentType) {
    case 'track': {
      const event = nonEmpty(message.event);
      if (event === undefined) throw new InvalidEventError('event', message.event, 'is required for a track call and must be a non-empty string');
      name = event;
      data = object(message.properties);
      break;
    }
    case 'page':
    case 'screen': {
      name = kind as string;
      const pageName = nonEmpty(message.name);
      const properties = object(message.properties);
      data = pageName === undefined ? properties : { ...properties, name: pageName };
      break;
    }
    case 'identify':
      name = 'identify';
      data = object(message.traits);
      break;
    case 'group': {
      name = 'group';
      const groupId = idValue('groupId', message.groupId, limits);
      if (groupId === undefined) throw new InvalidEventError('groupId', message.groupId, 'is required for a group call and must be a string or an integer');
      data = { ...object(message.traits), groupId };
      break;
    }
    case 'alias':
      name = 'alias';
      break;
  }

  const batchContext = object(request.context);
  const ownContext = object(message.context);
  const context = batchContext === undefined ? ownContext : { ...batchContext, ...ownContext };
  const category = nonEmpty(message.category);

  const event: { -readonly [K in keyof XrefEvent]: XrefEvent[K] } = { id: messageId, name, timestamp: eventTimestamp(message, request), ids };
  if (category !== undefined) event.category = category;
  if (data !== undefined) event.data = data;
  if (context !== undefined) event.context = context;
  return event;
}
