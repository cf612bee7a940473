import { Command, InvalidArgumentError, Option } from 'commander';
import { type Settings, loadSettings } from '../settings.ts';
import { XrefError } from '../domain/errors.ts';
import { subjects } from '../nats/subjects.ts';
import { activityCommand } from './activity-command.ts';
import { erasureCommand, forgetCommand, unlinkCommand, unsuppressCommand } from './control-commands.ts';
import { groupCommand } from './group-command.ts';
import { projectCommand } from './project-command.ts';
import { type RemoteOptions, eventsCommand, userCommand, whoCommand } from './query-commands.ts';
import { publishCommand } from './publish-command.ts';
import { replayCommand } from './replay-command.ts';
import { serveCommand } from './serve-command.ts';
import { releaseStopSignals } from './stop-signals.ts';
import { tailCommand } from './tail-command.ts';

/** The `xref` command line. Each command returns its exit status. */
export function buildProgram(): Command {
  // the environment is read once, by the first command that needs settings (`group` needs none)
  let loaded: Settings | undefined;
  const settings = () => (loaded ??= loadSettings());
  const program = new Command('xref')
    .description('Match third-party identifiers to your own user ids and route every event to its user.')
    .showHelpAfterError()
    // only `serve` keeps the stop signals caught at start-up (bin/xref.js); the others get their default back
    .hook('preAction', (_program, command) => {
      if (command.name() !== 'serve') releaseStopSignals();
    });

  program
    .command('group')
    .description('group an NDJSON file of events offline, with no server, and print the groups document')
    .argument('<file>', 'NDJSON file of events, or - for standard input')
    .option('-c, --config <file>', 'JSON config file (keys: internal, relink, maxIdsPerUser, buffer, junkValues, junkPattern, schemas, unknownTypes, maxFutureMs)')
    .addOption(
      new Option('-i, --internal <kinds>', 'internal kinds, comma-separated or repeated, overriding the config (default: db_id,user_id)').argParser(
        (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').filter((kind) => kind.length > 0)],
      ),
    )
    .option('-r, --report', 'print the whole report: { groups, unmatched, audit }')
    .action(async (file: string, options) => {
      process.exitCode = await groupCommand(file, options, { stdout: process.stdout, stderr: process.stderr });
    });

  program
    .command('activity')
    .description('active people per day, week or month (frozen and restated counts, buckets): counted offline from an NDJSON file with no server, or, with no file, as xref serve counted them (the read model, or --url)')
    .argument('[file]', 'NDJSON file of events, or - for standard input (none: the read model\'s counts)')
    .option('-p, --period <period>', 'day, week or month', 'day')
    .option('-c, --config <file>', 'JSON config file (its "activity" key: timeZone, close, buckets, aggregates)')
    .option('--from <time>', 'first period: the one holding this date (YYYY-MM-DD) or ISO time (default: the first with activity)')
    .option('--to <time>', 'end, exclusive: periods starting before this date or ISO time (default: after the last with activity)')
    .option('-b, --bucket <name>', 'a bucket or aggregate to count, repeated (default: all)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--tz <zone>', 'IANA time zone of the periods (default: the config\'s activity.timeZone, else UTC)')
    .option('--json', 'print the API document { period, timeZone, series } instead of a table')
    .option('--plot <file.svg>', 'also write a chart of the series as SVG')
    .option('--url <url>', 'with no file: ask this running server (GET /v1/activity) instead of reading the database')
    .option('--token <token>', 'the read token for --url (default: XREF_READ_TOKEN)')
    .action(async (file: string | undefined, options) => {
      process.exitCode = await activityCommand(file, options, { stdout: process.stdout, stderr: process.stderr }, settings);
    });

  program
    .command('serve')
    .description('run the streaming engine on NATS JetStream (NATS_URL) and the HTTP collector on PORT (default 8080)')
    .option('--no-engine', 'run the HTTP collector only')
    .option('--no-http', 'run the streaming engine only')
    .option('--no-projection', 'leave the read-model projection out (the query routes then answer from what it holds)')
    .option('--insecure-no-auth', 'accept HTTP requests without a write key when XREF_WRITE_KEYS is empty')
    .action((options: { engine: boolean; http: boolean; projection: boolean; insecureNoAuth?: boolean }) => serveCommand(options, settings()));

  program
    .command('project')
    .description('fill the read model (XREF_DATABASE_URL, default SQLite under XREF_DATA_DIR) from the streams, until stopped')
    .option('--rebuild', 'empty the read model, rebuild it from the streams up to their current end, print a summary and exit')
    .option('-c, --config <file>', 'JSON config file (default: XREF_CONFIG)')
    .action(async (options: { rebuild?: boolean; config?: string }) => {
      process.exitCode = await withStopSignal((signal) => projectCommand(options, { stdout: process.stdout, stderr: process.stderr }, settings(), signal));
    });

  const remote = (command: Command) =>
    command
      .option('--url <url>', 'ask a running xref server (e.g. http://localhost:8080) instead of reading the database')
      .option('--token <token>', 'the read token for --url (default: XREF_READ_TOKEN)')
      .option('--json', 'print JSON for scripts instead of a table');
  const io = { stdout: process.stdout, stderr: process.stderr };

  remote(
    program
      .command('events')
      .description('list events from the read model, newest first (with --session-id: in the order they happened)')
      .option('--session-id <id>', 'events of this session')
      .option('--category <category>', 'events of this category')
      .option('--name <name>', 'events of this name')
      .option('--source <source>', 'events that came in on xref.in.<source>')
      .option('--user <kind:id>', 'events resolved to this user')
      .option('--identifier <kind:value>', 'events carrying this identifier')
      .option('--after <time>', 'from this time on, inclusive (ISO 8601, or a date: from its start, UTC)')
      .option('--before <time>', 'up to this time, inclusive (ISO 8601, or a date: through its end, UTC)')
      .option('--order <asc|desc>', 'time order (default desc; asc with --session-id)')
      .option('--limit <n>', 'events per page (default 100, at most 1000)')
      .option('--cursor <cursor>', 'the page after the one that printed this cursor'),
  ).action(async (options: Record<string, string | boolean | undefined> & RemoteOptions) => {
    process.exitCode = await eventsCommand(options, io, settings());
  });

  remote(program.command('who').description('who is this identifier? linked, buffering, unmatched or unknown').argument('<kind>', 'identifier kind, e.g. cookie').argument('<value>', 'identifier value')).action(
    async (kind: string, value: string, options: RemoteOptions) => {
      process.exitCode = await whoCommand(kind, value, options, io, settings());
    },
  );

  remote(program.command('user').description("a user's events grouped by identifier, and their linked identifiers").argument('<kind>', "the user's internal kind, e.g. db_id").argument('<id>', "the user's id")).action(
    async (kind: string, id: string, options: RemoteOptions) => {
      process.exitCode = await userCommand(kind, id, options, io, settings());
    },
  );

  program
    .command('publish')
    .description('validate an NDJSON file of events and publish the good ones to xref.in.<source> (NATS_URL, default nats://127.0.0.1:4222)')
    .argument('<file>', 'NDJSON file of events, or - for standard input')
    .option('-s, --subject <subject>', `subject under xref.in. to publish on (default: ${subjects.in('cli')})`)
    .option('--json', 'also print the summary as JSON on stdout')
    .action(async (file: string, options: { subject?: string; json?: boolean }) => {
      process.exitCode = await publishCommand(file, options, { stdout: process.stdout, stderr: process.stderr }, settings());
    });

  program
    .command('replay')
    .description('rebuild the state from the log XREF_IN (stop `xref serve` first), or compare it with --verify')
    .option('--from-seq <n>', 'first input to apply (default 1)', positiveInt)
    .option('--verify', 'replay up to the live checkpoint and report differences; change nothing')
    .option('--republish', 'publish the outputs again, into emptied XREF_GROUPS / XREF_UNMATCHED / XREF_AUDIT')
    .option('-c, --config <file>', 'JSON config file (default: XREF_CONFIG)')
    .action(async (options: { fromSeq?: number; verify?: boolean; republish?: boolean; config?: string }) => {
      process.exitCode = await replayCommand(options, { stdout: process.stdout, stderr: process.stderr }, settings());
    });

  program
    .command('tail')
    .description("print a user's resolved events as they arrive, one JSON line each ({seq, user, via, event}), until Ctrl-C")
    .argument('<kind>', 'the user\'s internal kind, e.g. db_id')
    .argument('<id>', 'the user\'s id')
    .option('--new', 'only events resolved from now on (default: from the start)')
    .option('--limit <n>', 'stop after n messages', positiveInt)
    .action(async (kind: string, id: string, options: { new?: boolean; limit?: number }) => {
      process.exitCode = await withStopSignal((signal) => tailCommand(kind, id, options, { stdout: process.stdout, stderr: process.stderr }, settings(), signal));
    });

  program
    .command('forget')
    .description("erase a user's whole identity cluster, in the log too, and drop later events carrying its ids (GDPR erasure; docs/erasure.md); prints the request id")
    .argument('<kind>', "the user's internal kind, e.g. user_id")
    .argument('<id>', "the user's id")
    .option('--no-suppress', 'erase, but let later events carrying the ids in again')
    .option('--wait', "wait until the engine's part is done, then print the status as JSON (exit 1 if it is not by --timeout)")
    .option('--timeout <ms>', 'how long --wait waits (default 60000)', positiveInt)
    .action(async (kind: string, id: string, options: { suppress: boolean; wait?: boolean; timeout?: number }) => {
      process.exitCode = await forgetCommand(kind, id, options, io, settings());
    });

  program
    .command('erasure')
    .description("where a forget stands, as JSON: requested, erasing, erased/done (the engine's part; the read model's is in GET /v1/forget/<request>)")
    .argument('<request>', 'the request id xref forget printed')
    .action(async (request: string) => {
      process.exitCode = await erasureCommand(request, io, settings());
    });

  program
    .command('unsuppress')
    .description('let events carrying a forgotten id in again: the id starts afresh, as an unknown identifier; prints the request id')
    .argument('<kind>', 'identifier kind, e.g. cookie')
    .argument('<value>', 'identifier value')
    .action(async (kind: string, value: string) => {
      process.exitCode = await unsuppressCommand(kind, value, io, settings());
    });

  program
    .command('unlink')
    .description('detach an identifier from its user; prints the request id')
    .argument('<kind>', 'identifier kind, e.g. cookie')
    .argument('<value>', 'identifier value')
    .option('--block', 'also refuse later links of the identifier to the same user')
    .action(async (kind: string, value: string, options: { block?: boolean }) => {
      process.exitCode = await unlinkCommand(kind, value, options, io, settings());
    });

  return program;
}

/** Runs `run` with a signal aborted at the first SIGINT or SIGTERM. */
async function withStopSignal(run: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const stop = new AbortController();
  const abort = () => stop.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  try {
    return await run(stop.signal);
  } finally {
    process.off('SIGINT', abort);
    process.off('SIGTERM', abort);
  }
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof XrefError || (error as NodeJS.ErrnoException).code === 'ENOENT') {
      // the message says what to do; no stack trace
      process.stderr.write(`xref: ${(error as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
}
