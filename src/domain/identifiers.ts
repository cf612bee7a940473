/** Identifier kinds, values and the junk rule (DESIGN.md §3). */

/** A kind name is also a NATS subject token, so it keeps to a safe alphabet. */
export const KIND_PATTERN = /^[A-Za-z0-9_-]+$/;

/** Values that look like an id but say "nobody": they never link. Compared trimmed and lower-cased. */
export const BUILTIN_JUNK = Object.freeze([
  '',
  'null',
  'undefined',
  'nil',
  'none',
  'nan',
  'anonymous',
  'guest',
  '0',
  '-1',
  '[object object]',
]);

export interface JunkRule {
  (value: string): boolean;
}

export function junkRule(extraValues: readonly string[], pattern: RegExp | undefined): JunkRule {
  const junk = new Set([...BUILTIN_JUNK, ...extraValues.map((v) => v.trim().toLowerCase())]);
  return (value) => junk.has(value.trim().toLowerCase()) || (pattern !== undefined && pattern.test(value));
}

/** One identifier: a kind and its value. */
export interface Identifier {
  readonly kind: string;
  readonly value: string;
}

/**
 * Map key of an identifier. Kinds cannot contain ':' (KIND_PATTERN), so the first ':' splits it back.
 */
export function idKey(kind: string, value: string): string {
  return `${kind}:${value}`;
}

export function parseIdKey(key: string): Identifier {
  const at = key.indexOf(':');
  return { kind: key.slice(0, at), value: key.slice(at + 1) };
}
