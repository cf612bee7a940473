import { createHmac, randomBytes } from 'node:crypto';
import { idKey } from './identifiers.ts';

/** A salted hash of an id (`kind:value`): what control inputs, tombstones and the suppression list hold instead of the id. */
export type IdHasher = (kind: string, value: string) => string;

/** HMAC-SHA256 of `<kind>:<value>` under the installation's salt, lower-case hex (docs/erasure.md). */
export function idHasher(salt: string): IdHasher {
  const key = Buffer.from(salt, 'hex');
  return (kind, value) => createHmac('sha256', key).update(idKey(kind, value)).digest('hex');
}

/** A new installation salt: 32 random bytes, hex. */
export function newSalt(): string {
  return randomBytes(32).toString('hex');
}

/** Whether a string has the shape of a hash `idHasher` makes. */
export function isIdHash(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}
