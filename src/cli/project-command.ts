import type { Settings } from '../settings.ts';
import type { CommandIo } from './group-command.ts';

export interface ProjectCommandOptions {
  /** Empty the read model and rebuild it from the streams up to their current end, then exit. */
  rebuild?: boolean;
  /** JSON config file (default: XREF_CONFIG). */
  config?: string;
}

/** `xref project [--rebuild]`: placeholder until the projection lands. */
export async function projectCommand(_options: ProjectCommandOptions, io: CommandIo, _settings: Settings, _signal: AbortSignal): Promise<number> {
  io.stderr.write('xref project: not built yet\n');
  return 2;
}
