import type { XrefEvent } from '../src/domain/envelope.ts';

/**
 * The plain-object reducer a team would write in an afternoon: links and buffers in plain
 * objects, no clusters, no bounds, no audit, no dedup, no actors. The yardstick for xref.
 */
export function baselineReducer(internal: readonly string[]) {
  const links: Record<string, string> = {};
  const buffers: Record<string, XrefEvent[]> = {};
  let resolved = 0;
  return {
    ingest(event: XrefEvent) {
      let user: string | undefined;
      const third: string[] = [];
      for (const kind in event.ids) {
        const key = `${kind}:${event.ids[kind]}`;
        if (internal.includes(kind)) user ??= key;
        else third.push(key);
      }
      if (user === undefined) {
        for (const key of third) if (links[key] !== undefined) user = links[key];
        if (user === undefined) {
          for (const key of third) (buffers[key] ??= []).push(event);
          return;
        }
      }
      resolved++;
      for (const key of third) {
        links[key] = user;
        const waiting = buffers[key];
        if (waiting !== undefined) {
          resolved += waiting.length;
          delete buffers[key];
        }
      }
    },
    get resolved() {
      return resolved;
    },
    get links() {
      return Object.keys(links).length;
    },
  };
}
