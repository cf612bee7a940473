/**
 * TypeBox schemas checked by TypeBox's compiled validator, with errors worded for people: every
 * schema that can fail carries a `description` ("must be ..."), and a failure becomes an
 * XrefError "<field> <description>, got <value>" naming the field path and quoting the value.
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { type ErrorCode, XrefError, quote } from '../domain/errors.ts';

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
}

function child(node: SchemaNode, segment: string): SchemaNode | undefined {
  if (node.properties?.[segment] !== undefined) return node.properties[segment];
  if (node.items !== undefined && /^\d+$/.test(segment)) return node.items;
  for (const option of node.anyOf ?? []) {
    const found = child(option, segment);
    if (found !== undefined) return found;
  }
  return undefined;
}

function join(path: string, segment: string): string {
  if (/^\d+$/.test(segment)) return `${path}[${segment}]`;
  return path === '' ? segment : `${path}.${segment}`;
}

export interface Checker<T> {
  /** True when the value matches the schema. */
  check(value: unknown): value is T;
  /** The first failure as an XrefError naming the field and the value (`root` names the value itself). */
  explain(value: unknown, root?: string): XrefError;
}

/** Compiles a schema once; `code` is the error code of its failures. */
export function checker<T extends TSchema>(schema: T, code: ErrorCode): Checker<Static<T>> {
  const validator = Compile(schema);
  return {
    check: (value: unknown): value is Static<T> => validator.Check(value),
    explain(value: unknown, root = ''): XrefError {
      const first = validator.Errors(value)[0];
      let node: SchemaNode | undefined = schema as SchemaNode;
      let field = '';
      let current: unknown = value;
      let description = node.description ?? 'does not match its schema';
      const segments = (first?.instancePath ?? '').split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      if (first?.keyword === 'required') {
        const missing = (first.params as { requiredProperties?: string[] }).requiredProperties?.[0];
        if (missing !== undefined) segments.push(missing);
      }
      for (const segment of segments) {
        const next: SchemaNode | undefined = node === undefined ? undefined : child(node, segment);
        field = join(field, segment);
        current = typeof current === 'object' && current !== null ? (current as Record<string, unknown>)[segment] : undefined;
        node = next;
        if (node?.description !== undefined) description = node.description;
      }
      const name = field || root || 'value';
      return new XrefError(code, `${name} ${description}, got ${quote(current)}`, { field: name });
    },
  };
}
