/**
 * The tracker's one deep copy: plain objects and arrays copied, anything else (a Date, a Buffer, a
 * class instance) shared. A routing branch copies each event with it; a context copies its values
 * with it, frozen.
 */

/** Deeper than this, a value is shared rather than copied (a cycle cannot recurse forever). */
const MAX_COPY_DEPTH = 64;

/** A deep copy of the plain objects and arrays in a JSON-like value, each frozen when `freeze`; anything else is shared. */
export function copyJson<T>(value: T, freeze = false): T {
  return copyAt(value, freeze, 0) as T;
}

function copyAt(value: unknown, freeze: boolean, depth: number): unknown {
  if (typeof value !== 'object' || value === null || depth > MAX_COPY_DEPTH) return value;
  let out: unknown[] | Record<string, unknown>;
  if (Array.isArray(value)) {
    out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyAt(value[i], freeze, depth + 1);
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    out = {};
    const source = value as Record<string, unknown>;
    for (const key of Object.keys(source)) out[key] = copyAt(source[key], freeze, depth + 1);
  }
  return freeze ? Object.freeze(out) : out;
}
