import { Command, Option } from 'commander';
import { XrefError } from '../domain/errors.ts';
import { groupCommand } from './group-command.ts';
import { serveCommand } from './serve-command.ts';

/** The `xref` command line. Each command returns its exit status. */
export function buildProgram(): Command {
  const program = new Command('xref')
    .description('Match third-party identifiers to your own user ids and route every event to its user.')
    .showHelpAfterError();

  program
    .command('group')
    .description('group an NDJSON file of events offline, with no server, and print the groups document')
    .argument('<file>', 'NDJSON file of events, or - for standard input')
    .option('-c, --config <file>', 'JSON config file (keys: internal, relink, maxIdsPerUser, buffer, junkValues, junkPattern)')
    .addOption(new Option('-i, --internal <kind...>', 'internal kinds, overriding the config (default: db_id user_id)'))
    .option('-r, --report', 'print the whole report: { groups, unmatched, audit }')
    .action(async (file: string, options) => {
      process.exitCode = await groupCommand(file, options, { stdout: process.stdout, stderr: process.stderr });
    });

  program
    .command('serve')
    .description('run the streaming engine on NATS JetStream (NATS_URL, default nats://127.0.0.1:4222)')
    .action(serveCommand);

  return program;
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
