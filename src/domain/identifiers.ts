/** Identifier kinds, values and the junk rule (docs/architecture.md, identity rules). */

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
  const longest = Math.max(...[...junk].map((v) => v.length));
  const listed = (value: string) => {
    if (junk.has(value)) return true;
    // a value longer than every junk value, with nothing to trim, cannot be one: skip the copies
    if (value.length > longest && value.charCodeAt(0) > 32 && value.charCodeAt(value.length - 1) > 32) return false;
    return junk.has(value.trim().toLowerCase());
  };
  return pattern === undefined ? listed : (value) => listed(value) || pattern.test(value);
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
