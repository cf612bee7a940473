import { writeFileSync } from 'node:fs';
import Table from 'cli-table3';
import type { TopLevelSpec } from 'vega-lite';
import type { ActivitySeries } from '../activity/activity-counter.ts';
import { isPeriodKind } from '../activity/activity-config.ts';
import type { OfflineSummary } from '../activity/offline-activity.ts';
import { XrefError, quote } from '../domain/errors.ts';
import { type CommandIo, loadConfigFile } from './group-command.ts';
import { openInput, readNdjson } from './ndjson.ts';
import { type QuerySettings, type RemoteOptions, withAnswers } from './query-commands.ts';

export interface ActivityCommandOptions {
  period?: string;
  config?: string;
  from?: string;
  to?: string;
  bucket?: string[];
  tz?: string;
  json?: boolean;
  plot?: string;
}

/** Width of the longest bar of a column, in characters. */
const BAR_WIDTH = 24;

/**
 * `xref activity [FILE|-]`: the active people of an NDJSON log, counted offline as the streaming
 * service counts them (docs/activity.md), or without a file as the projection counted them (the
 * read model, or a server's `GET /v1/activity` with `--url`): a table with a bar per row, or
 * `--json` the API's document; `--plot FILE.svg` also writes a chart. Bad lines go to stderr as
 * `line N: reason` and the rest is still counted. Returns the exit status: 1 if any line was
 * rejected, else 0.
 */
export async function activityCommand(file: string | undefined, options: ActivityCommandOptions & RemoteOptions, io: CommandIo, settings?: () => QuerySettings): Promise<number> {
  const period = options.period ?? 'day';
  if (!isPeriodKind(period)) throw new XrefError('XREF_INVALID_ARGUMENT', `--period must be day, week or month, got ${quote(period)}`, { field: 'period' });
  if (file === undefined) return countedActivity(period, options, io, settings!());
  if (options.url !== undefined) throw new XrefError('XREF_INVALID_ARGUMENT', `--url asks a server for its counts: give no FILE with it, got ${quote(file)}`, { field: 'url' });
  // loaded here (with its date library), not at the CLI's start
  const { OfflineActivity } = await import('../activity/offline-activity.ts');
  // the offline run counts in any zone asked for: it is counted from the file
  const run = new OfflineActivity(loadConfigFile(options.config), { extraTimeZones: options.tz === undefined ? [] : [options.tz] });
  const request = { period, from: options.from, to: options.to, buckets: options.bucket, tz: options.tz };
  run.counter.series(request); // a bad bucket, bound or range is refused before the file is read
  let rejected = 0;
  for await (const entry of readNdjson(openInput(file))) {
    const error = 'error' in entry ? run.reject(entry.error) : run.add(entry.value, entry.bytes);
    if (error !== undefined) {
      rejected++;
      io.stderr.write(`line ${entry.line}: ${error.message}\n`);
    }
  }
  const doc = run.counter.series(request);
  if (options.json) io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  else io.stdout.write(`${renderTable(doc, run.counter.closedThrough(period, options.tz))}\n${summaryLine(run.summary)}\n`);
  if (options.plot !== undefined) {
    writeFileSync(options.plot, await renderChart(doc, run.counter.closedThrough(period, options.tz)));
    io.stderr.write(`wrote ${options.plot}\n`);
  }
  return rejected > 0 ? 1 : 0;
}

/** The counts the projection kept: from the read model, or a server with `--url`. */
async function countedActivity(period: string, options: ActivityCommandOptions & RemoteOptions, io: CommandIo, settings: QuerySettings): Promise<number> {
  const params = { period, from: options.from, to: options.to, bucket: options.bucket, tz: options.tz };
  const doc = await withAnswers(options, settings, (answers) => answers.activity(Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined))));
  if (options.json) io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  else io.stdout.write(`${renderTable(doc, doc.closedThrough ?? undefined)}\ncounted through input ${doc.watermark}\n`);
  if (options.plot !== undefined) {
    writeFileSync(options.plot, await renderChart(doc, doc.closedThrough ?? undefined));
    io.stderr.write(`wrote ${options.plot}\n`);
  }
  return 0;
}

function summaryLine(summary: OfflineSummary): string {
  const parts = [`${summary.rejected} rejected`, `${summary.duplicates} duplicate`, `${summary.untimed} untimed`, `${summary.unattributed} unattributed`, `${summary.anonymous} still anonymous`];
  return `${summary.events} events counted (${parts.join(', ')})`;
}

function bar(n: number, max: number): string {
  if (n <= 0 || max <= 0) return '';
  return '█'.repeat(Math.max(1, Math.round((n / max) * BAR_WIDTH)));
}

/** The series as a table: a row per period, per key its count and a bar scaled to the key's largest count. */
export function renderTable(doc: ActivitySeries, closedThrough: string | undefined): string {
  const keys = doc.series.length > 0 ? Object.keys(doc.series[0]!.counts) : [];
  const table = new Table({
    head: [`${doc.period} (${doc.timeZone})`, ...keys, 'unattributed'],
    style: { head: [], border: [] },
    // no line between rows: one row per period reads as a chart
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  const max = new Map(keys.map((key) => [key, Math.max(0, ...doc.series.map((p) => Math.max(p.counts[key]!, p.restated?.[key] ?? 0)))]));
  const shown = (n: number, now: number | undefined) => (now !== undefined && now !== n ? `${n} → ${now}` : String(n));
  // the numbers of a column padded to one width, so that its bars start in line
  const width = new Map(keys.map((key) => [key, Math.max(0, ...doc.series.map((p) => shown(p.counts[key]!, p.restated?.[key]).length))]));
  const unattributedWidth = Math.max(0, ...doc.series.map((p) => shown(p.unattributed, p.restatedUnattributed).length));
  let open = false;
  let restated = false;
  for (const point of doc.series) {
    const isOpen = closedThrough === undefined || point.start > closedThrough;
    open ||= isOpen;
    const cells = keys.map((key) => {
      const n = point.counts[key]!;
      const text = shown(n, point.restated?.[key]);
      if (text !== String(n)) restated = true;
      return `${text.padStart(width.get(key)!)} ${bar(n, max.get(key)!)}`.trimEnd();
    });
    if (point.restatedUnattributed !== undefined) restated = true;
    table.push([`${point.start}${isOpen ? ' *' : ''}`, ...cells, shown(point.unattributed, point.restatedUnattributed).padStart(unattributedWidth)]);
  }
  const notes: string[] = [];
  if (doc.series.length === 0) notes.push('no activity in this range');
  if (open) notes.push('* open: its counts may still change');
  if (restated) notes.push('a → b: a as frozen when the period closed, b as known now');
  return [table.toString(), ...notes].join('\n');
}

/** A silent logger for vega and vega-lite (their warnings would go to the console). */
function silentLogger() {
  const logger = { level: (_?: number) => (_ === undefined ? 0 : logger), error: () => logger, warn: () => logger, info: () => logger, debug: () => logger };
  return logger;
}

/**
 * The series as an SVG chart: a line per key (with a point per period), dates on the x axis, people
 * on the y axis, a legend per key; where a closed period was restated, a dashed line of the counts
 * as known now beside the frozen ones. `closedThrough`: the start of the last closed period, for the subtitle. Vega-Lite compiled to Vega, rendered in Node; both are
 * loaded here only, so the CLI starts without them.
 */
export async function renderChart(doc: ActivitySeries, closedThrough?: string): Promise<string> {
  const [vegaLite, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const keys = doc.series.length > 0 ? Object.keys(doc.series[0]!.counts) : [];
  const anyRestated = doc.series.some((point) => point.restated !== undefined);
  const values = doc.series.flatMap((point) =>
    keys.flatMap((key) => {
      const reported = { start: point.start, bucket: key, people: point.counts[key]!, counts: 'as reported' };
      return anyRestated ? [reported, { ...reported, people: point.restated?.[key] ?? point.counts[key]!, counts: 'as known now' }] : [reported];
    }),
  );
  const format = doc.period === 'month' ? '%b %Y' : '%b %d';
  // a tick on period starts only (at most 16 labels): vega's own ticks would fall between weeks or months
  const step = Math.max(1, Math.ceil(doc.series.length / 16));
  const ticks = doc.series.filter((_, i) => i % step === 0).map((point) => Date.parse(`${point.start}T00:00:00Z`));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Active people per ${doc.period} (${doc.timeZone})`,
      subtitle: closedThrough === undefined ? 'no period closed yet: every count may still change' : `closed (frozen) through the ${doc.period} of ${closedThrough}; later ones may still change`,
    },
    width: Math.min(1200, Math.max(560, doc.series.length * 40)),
    height: 280,
    background: 'white',
    data: { values, format: { parse: { start: "utc:'%Y-%m-%d'" } } },
    encoding: {
      x: { field: 'start', type: 'temporal', scale: { type: 'utc' }, axis: { format, labelAngle: -40, values: ticks, labelOverlap: false }, title: `${doc.period} starting (${doc.timeZone})` },
      y: { field: 'people', type: 'quantitative', title: 'active people', axis: { tickMinStep: 1 } },
      color: { field: 'bucket', type: 'nominal', title: 'bucket', sort: keys },
    },
    layer: [
      {
        mark: { type: 'line' },
        ...(anyRestated ? { encoding: { strokeDash: { field: 'counts', type: 'nominal', title: 'counts', sort: ['as reported', 'as known now'], legend: { symbolType: 'stroke', symbolStrokeColor: 'gray', symbolStrokeWidth: 2 } } } } : {}),
      },
      { mark: { type: 'point', filled: true } },
    ],
  } as TopLevelSpec;
  const logger = silentLogger();
  const compiled = vegaLite.compile(spec, { logger: logger as never }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: 0 });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
