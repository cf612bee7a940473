import type { Settings } from '../settings.ts';
import type { CommandIo } from './group-command.ts';

/** Where the query commands read: the database (default) or a running server. */
export interface RemoteOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** `xref events`: placeholder until the queries land. */
export async function eventsCommand(_options: Record<string, string | boolean | undefined> & RemoteOptions, io: CommandIo, _settings: Settings): Promise<number> {
  io.stderr.write('xref events: not built yet\n');
  return 2;
}

/** `xref who <kind> <value>`: placeholder until the queries land. */
export async function whoCommand(_kind: string, _value: string, _options: RemoteOptions, io: CommandIo, _settings: Settings): Promise<number> {
  io.stderr.write('xref who: not built yet\n');
  return 2;
}

/** `xref user <kind> <id>`: placeholder until the queries land. */
export async function userCommand(_kind: string, _id: string, _options: RemoteOptions, io: CommandIo, _settings: Settings): Promise<number> {
  io.stderr.write('xref user: not built yet\n');
  return 2;
}
