import type { XrefEvent } from '../../src/domain/envelope.ts';

/**
 * The obviously-correct model of grouping for conflict-free logs with unbounded buffers: join
 * every event's identifiers in one union-find; a component holding an internal id belongs to it.
 * Returns `user → via → event ids in log order` and the ids of unplaced events.
 */
export function referenceGroups(log: XrefEvent[], internal: string[]) {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root)!;
    parent.set(x, root);
    return root;
  };
  const keysOf = (event: XrefEvent) => Object.entries(event.ids).map(([kind, value]) => `${kind}:${value}`);
  for (const event of log) {
    const keys = keysOf(event);
    for (const key of keys) if (!parent.has(key)) parent.set(key, key);
    for (const key of keys.slice(1)) parent.set(find(key), find(keys[0]!));
  }
  const owner = new Map<string, string>();
  for (const key of parent.keys()) if (internal.includes(key.split(':')[0]!)) owner.set(find(key), key);

  const groups: Record<string, Record<string, string[]>> = {};
  const unplaced: string[] = [];
  for (const event of log) {
    const keys = keysOf(event);
    const own = keys.find((key) => internal.includes(key.split(':')[0]!));
    const user = own ?? owner.get(find(keys[0]!));
    if (user === undefined) {
      unplaced.push(event.id);
      continue;
    }
    const via = own ?? keys[0]!;
    ((groups[user] ??= {})[via] ??= []).push(event.id);
  }
  return { groups, unplaced };
}
