import type { Logger } from 'pino';
import type { Config } from '../domain/config.ts';
import type { ReadModelStore } from './read-model.ts';

export interface QueryOptions {
  /** The identity config: internal kinds, buffer bounds (when buffered events expire). */
  readonly config: Config;
  /** The most events a user document holds (settings.userEventsCap). */
  readonly userEventsCap: number;
  readonly logger: Logger;
}

/** The answers of the query API and the query commands, from the read model (placeholder: being written). */
export class ReadModelQueries {
  constructor(
    readonly store: ReadModelStore,
    readonly options: QueryOptions,
  ) {}
}
