import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { XrefEvent } from '../domain/envelope.ts';
import type { Resolved, UserRef } from '../engine/outputs.ts';
import { readStream } from './log-reader.ts';
import { HEADERS, STREAMS, subjects } from './subjects.ts';

interface ResolutionHeader {
  readonly seq: number;
  readonly at: number;
}

/**
 * A user's resolutions standing before input `before`, as its subject in XREF_GROUPS holds them:
 * those decided before it (`at` in the Xref-Resolution header), less those a retraction before it
 * took back, in log order. What an unlink at `before` retracts from; the same when it is applied
 * again (a restart, a replay), whatever was published after it.
 */
export async function standingResolutions(js: JetStreamClient, jsm: JetStreamManager, user: UserRef, before: number): Promise<Resolved[]> {
  const standing = new Map<string, Resolved>();
  await readStream(js, jsm, { stream: STREAMS.groups, filter: subjects.group(user.kind, user.id) }, (msg) => {
    const retraction = msg.headers?.get(HEADERS.retraction);
    if (retraction) {
      const { output, seq } = JSON.parse(retraction) as { output: string; seq: number };
      if (seq < before) standing.delete(output);
      return;
    }
    const head = msg.headers?.get(HEADERS.resolution);
    const outputId = msg.headers?.get(HEADERS.msgId);
    if (!head || !outputId || (JSON.parse(head) as ResolutionHeader).at >= before) return;
    const body = msg.json<{ seq: number; user: UserRef; via: Resolved['via']; event: XrefEvent }>();
    standing.set(outputId, { outputId, seq: body.seq, event: body.event, user: body.user, via: body.via });
  });
  return [...standing.values()];
}
