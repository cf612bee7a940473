/**
 * The payload rules of a config: each event type's JSON Schema for its `data` (config `schemas`,
 * keyed by `category/name` or `name`, the more specific winning), what becomes of a type with no
 * schema (`unknownTypes`), and how far ahead of its arrival a timestamp may be (`maxFutureMs`).
 * The collector, the engine, `xref publish` and the offline Grouper all check events here, so they
 * refuse the same ones. Schemas are compiled once per Config, with ajv 8, which is loaded only
 * when a config has schemas (the offline library stays light without them).
 */
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { Config } from './config.ts';
import { type XrefEvent, eventTime } from './envelope.ts';
import { type ErrorCode, InvalidConfigError, XrefError, quote } from './errors.ts';

/** A payload rule refused an event: the error, and the bad value it names (kept for the error record). */
export class PayloadError extends XrefError {
  constructor(
    code: ErrorCode,
    message: string,
    field: string,
    readonly value: unknown,
  ) {
    super(code, message, { field });
  }
}

/** The most schema keys an unknown-type message lists. */
const LISTED_TYPES = 20;

let AjvClass: (new (options: object) => Ajv) | undefined;

/** A new ajv: unknown keywords are errors (a typo is not silently ignored), types may be left implicit. */
function newAjv(): Ajv {
  AjvClass ??= (createRequire(import.meta.url)('ajv') as { Ajv: new (options: object) => Ajv }).Ajv;
  return new AjvClass({ allErrors: false, strictSchema: true, strictTypes: false, strictTuples: false, strictRequired: false, allowUnionTypes: true, logger: false });
}

/** JSON pointer (`/items/0/price`) → its tokens, unescaped. */
function pointerTokens(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function childOf(value: unknown, token: string): unknown {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, token) ? (value as Record<string, unknown>)[token] : undefined;
}

/** The first error ajv reports, as an XREF_SCHEMA_VIOLATION naming the field (`data.price`) and quoting its value. */
function violation(error: ErrorObject, data: unknown, key: string): PayloadError {
  const path = pointerTokens(error.instancePath);
  let value = path.reduce(childOf, data);
  let what = error.message ?? 'does not match the schema';
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required' && typeof params.missingProperty === 'string') {
    path.push(params.missingProperty);
    value = undefined;
    what = 'is required';
  } else if (error.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    path.push(params.additionalProperty);
    value = childOf(value, params.additionalProperty);
    what = 'is not allowed (additionalProperties)';
  } else if (error.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    what = `must be one of ${quote(params.allowedValues)}`;
  }
  const field = ['data', ...path].join('.');
  return new PayloadError('XREF_SCHEMA_VIOLATION', `${field} ${what}, got ${quote(value)} (schema ${key})`, field, value);
}

/** The rules of one Config, compiled. */
export class PayloadRules {
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(private readonly config: Config) {
    const entries = Object.entries(config.schemas);
    if (entries.length === 0) return;
    const ajv = newAjv();
    for (const [key, schema] of entries) {
      try {
        this.validators.set(key, ajv.compile(schema));
      } catch (cause) {
        throw new InvalidConfigError(`schemas.${key}`, schema, `is not a valid JSON Schema (${(cause as Error).message})`);
      }
    }
  }

  /** The schema key an event is checked against: `category/name` when there is one, else `name`. */
  schemaKey(event: Pick<XrefEvent, 'name' | 'category'>): string | undefined {
    if (event.name === undefined) return undefined;
    if (event.category !== undefined) {
      const specific = `${event.category}/${event.name}`;
      if (this.validators.has(specific)) return specific;
    }
    return this.validators.has(event.name) ? event.name : undefined;
  }

  /**
   * Throws a PayloadError when the rules refuse `event` (an envelope already checked): its type has
   * no schema under `unknownTypes: "reject"`, its `data` (`{}` when it has none) fails its schema,
   * or, when `arrivalMs` is given, its timestamp is more than `maxFutureMs` ahead of it. `time`:
   * the event time when the caller has it already.
   */
  check(event: XrefEvent, arrivalMs?: number, time?: number): void {
    const key = this.schemaKey(event);
    if (key !== undefined) {
      const validate = this.validators.get(key)!;
      const data = event.data ?? {};
      if (!validate(data)) throw violation(validate.errors![0]!, data, key);
    } else if (this.config.unknownTypes === 'reject') {
      throw this.unknownType(event);
    }
    if (arrivalMs === undefined) return;
    const at = time ?? eventTime(event);
    if (at !== undefined && at - arrivalMs > this.config.maxFutureMs) {
      throw new PayloadError(
        'XREF_FUTURE_TIMESTAMP',
        `timestamp ${quote(event.timestamp)} is ${at - arrivalMs} ms ahead of its arrival, over maxFutureMs ${this.config.maxFutureMs}`,
        'timestamp',
        event.timestamp,
      );
    }
  }

  private unknownType(event: XrefEvent): PayloadError {
    const keys = [...this.validators.keys()];
    const known = keys.length === 0 ? 'none' : `${keys.slice(0, LISTED_TYPES).join(', ')}${keys.length > LISTED_TYPES ? `, … (${keys.length} in all)` : ''}`;
    const type = event.category === undefined || event.name === undefined ? quote(event.name) : `${quote(event.name)} (category ${quote(event.category)})`;
    const what = event.name === undefined ? 'is missing, and unknownTypes "reject" takes only events with a schema' : `${type} has no schema, and unknownTypes is "reject"`;
    return new PayloadError('XREF_UNKNOWN_EVENT_TYPE', `name ${what} (known: ${known})`, 'name', event.name);
  }
}

const compiled = new WeakMap<Config, PayloadRules>();

/** The rules of `config`, compiled on first use and kept as long as the Config (`resolveConfig` compiles them). */
export function payloadRules(config: Config): PayloadRules {
  let rules = compiled.get(config);
  if (rules === undefined) {
    rules = new PayloadRules(config);
    compiled.set(config, rules);
  }
  return rules;
}
