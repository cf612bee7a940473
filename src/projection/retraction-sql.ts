/**
 * What an unlink does to the read model (docs/read-model.md, unlinking an identifier), as write
 * scripts both adapters run in a batch's transaction (forget-sql.ts runs them): a retraction
 * (groups stream) moves the resolution it names from `resolutions` to `retractions`, before the
 * batch's own resolutions are written, so that the event, placed again with the same user later
 * in the batch, takes the place of the one retracted; an unlink's record (audit stream) ends the
 * identifier's link, in the stream's order with the link records around it. `?` placeholders.
 */
import type { Value } from './read-model-sql.ts';
import type { ProjectionBatch, ResolutionRow, RetractedResolution, RetractionRow } from './read-model.ts';
import type { WriteScript } from './forget-sql.ts';

const RETRACTION_SQL =
  'INSERT INTO retractions (output_id, stream_seq, retracted, event_id, user_kind, user_id, unlink_seq, event_seq, via_kind, via_value, decided_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
/** What the stored resolution was, copied into its retraction: `[user kind, user id, output id, retraction's output id]`. */
const COPIED_SQL =
  'UPDATE retractions SET (event_seq, via_kind, via_value, decided_seq) = (SELECT r.event_seq, r.via_kind, r.via_value, r.decided_seq FROM resolutions r WHERE r.user_kind = ? AND r.user_id = ? AND r.output_id = ?) WHERE output_id = ?';
/** On the user's rows (`resolutions_user`): a user has few, an unlink is rare. */
const RETRACTED_SQL = 'DELETE FROM resolutions WHERE user_kind = ? AND user_id = ? AND output_id = ?';

/**
 * A batch's resolutions less those its own retractions take back (matched by output id: a
 * retraction comes after what it retracts, on the same subject), and a script per retraction, in
 * stream order, each applied once (its row says it was): the retraction's row, with what the
 * resolution was (from the batch, or copied from the stored row), and the stored row deleted.
 */
export function retractionScripts(batch: ProjectionBatch): { resolutions: readonly ResolutionRow[]; scripts: WriteScript[] } {
  const retractions = batch.retractions ?? [];
  if (retractions.length === 0) return { resolutions: batch.resolutions, scripts: [] };
  const resolutions = [...batch.resolutions];
  const scripts = retractions.map((row) => {
    const at = resolutions.findIndex((r) => r.outputId === row.retracted && r.user.kind === row.user.kind && r.user.id === row.user.id);
    const [inBatch] = at < 0 ? [] : resolutions.splice(at, 1);
    return retractionScript(row, inBatch);
  });
  return { resolutions, scripts };
}

function retractionScript(row: RetractionRow, inBatch: ResolutionRow | undefined): WriteScript {
  const { kind, id } = row.user;
  const was: Value[] = inBatch === undefined ? [null, null, null, null] : [inBatch.eventSeq, inBatch.via.kind, inBatch.via.value, inBatch.decidedSeq];
  return {
    unless: { sql: 'SELECT 1 AS n FROM retractions WHERE output_id = ?', params: [row.outputId] },
    tables: [],
    steps: [
      { sql: RETRACTION_SQL, rows: [[row.outputId, row.streamSeq, row.retracted, row.eventId, kind, id, row.seq, ...was]] },
      ...(inBatch === undefined
        ? [
            { sql: COPIED_SQL, rows: [[kind, id, row.retracted, row.outputId]] },
            { sql: RETRACTED_SQL, rows: [[kind, id, row.retracted]] },
          ]
        : []),
    ],
  };
}

/**
 * A batch's unlinks, run before its links are written: each ends its identifier's link as the
 * stream set it before the unlink's record (the stored one; the batch's own earlier link records
 * are left out by `linkValues`). A link record after it sets the link again.
 */
export function unlinkScripts(batch: ProjectionBatch): WriteScript[] {
  return (batch.unlinks ?? []).map((row) => ({ tables: [], steps: [{ sql: 'DELETE FROM links WHERE kind = ? AND value = ?', rows: [[row.identifier.kind, row.identifier.value]] }] }));
}

/** The values of the linked identifiers of a kind: `[kind]`. */
export const LINKED_VALUES_SQL = 'SELECT value FROM links WHERE kind = ?';

/** What unlinks took back from a user: `[kind, id]`. */
export const RETRACTED_BY_USER_SQL =
  'SELECT output_id, retracted, event_id, event_seq, via_kind, via_value, unlink_seq FROM retractions WHERE user_kind = ? AND user_id = ? ORDER BY unlink_seq, event_seq, output_id';

export function retractedResolutions(rows: readonly unknown[]): RetractedResolution[] {
  type Answer = { output_id: string; retracted: string; event_id: string; event_seq: number | null; via_kind: string | null; via_value: string | null; unlink_seq: number };
  return (rows as Answer[]).map((row) => ({
    eventSeq: row.event_seq,
    eventId: row.event_id,
    via: row.via_kind === null || row.via_value === null ? null : { kind: row.via_kind, value: row.via_value },
    unlinkSeq: row.unlink_seq,
    retracted: row.retracted,
    outputId: row.output_id,
  }));
}
