/**
 * `trackerFromConfig(config)`: the whole tracker (processors, the backend tree) from plain config
 * nodes `{ engine, options }`, e.g. from a JSON file. The nodes' shape (engines, option keys,
 * names) is checked whole before anything is built; the option values are checked by each
 * backend's and processor's constructor, their error given at the config's path
 * (`backends.caliper.options.processors[0].options.patterns[1]`), and what was built before is
 * closed. The NATS backend's module is loaded only when a `nats` node is there.
 */
import type { Logger } from 'pino';
import { InvalidConfigError, XrefError, isXrefError } from '../domain/errors.ts';
import { subjects } from '../nats/subjects.ts';
import type { DeliveryOptions } from './delivery-queue.ts';
import { type HttpBackendOptions, httpBackend } from './http-backend.ts';
import { loggerBackend } from './logger-backend.ts';
import { memoryBackend } from './memory-backend.ts';
import type { NatsBackendOptions } from './nats-backend.ts';
import { type RegexFilterOptions, nameAllowlist, redact, regexFilter } from './processors.ts';
import { checkBackendName, routingBackend } from './routing-backend.ts';
import { type Tracker, createTracker } from './tracker.ts';
import type { Backend, OnDrop, Processor } from './types.ts';

/** One node of the tree: a backend or a processor, by engine, with its options. */
export interface ConfigNode {
  engine: string;
  options?: Record<string, unknown>;
}

export interface TrackerConfig {
  /** The tracker's source (default `tracker`); the NATS backends' default subject is `xref.in.<source>`. */
  source?: string;
  /** As TrackerOptions.ids: `{ 'context.user_id': 'db_id' }`. */
  ids?: Record<string, string>;
  /** Top-level processors: `regex-filter`, `name-allowlist`, `redact` nodes. */
  processors?: ConfigNode[];
  /** `{ name: node }` with engines `routing`, `http`, `nats`, `logger`, `memory`. */
  backends: Record<string, ConfigNode>;
}

/** What a plain config cannot hold. */
export interface TrackerConfigExtras {
  logger?: Logger;
  onDrop?: OnDrop;
  /** A NATS connection for the `nats` nodes that give no `servers`. */
  nc?: NatsBackendOptions['nc'];
}

export const BACKEND_ENGINES = ['routing', 'http', 'nats', 'logger', 'memory'] as const;
export const PROCESSOR_ENGINES = ['regex-filter', 'name-allowlist', 'redact'] as const;

const DELIVERY_KEYS = [
  'maxQueueEvents',
  'maxQueueBytes',
  'maxEventBytes',
  'flushAt',
  'flushIntervalMs',
  'maxInFlight',
  'minRetryDelayMs',
  'maxRetryDelayMs',
  'overflow',
] as const satisfies ReadonlyArray<keyof DeliveryOptions>;
const HTTP_KEYS = ['url', 'writeKey', 'requestTimeoutMs', 'maxBatchBytes', ...DELIVERY_KEYS] as const satisfies ReadonlyArray<keyof HttpBackendOptions>;
const NATS_KEYS = ['servers', 'subject', 'ackTimeoutMs', ...DELIVERY_KEYS] as const satisfies ReadonlyArray<keyof NatsBackendOptions>;

type ProcessorPlan = { path: string; make: () => Processor };
type BackendPlan =
  | { path: string; engine: 'routing'; processors: ProcessorPlan[]; backends: Array<[string, BackendPlan]> }
  | { path: string; engine: 'memory' | 'logger' | 'http' | 'nats'; options: Record<string, unknown> };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKeys(value: Record<string, unknown>, known: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new InvalidConfigError(`${path}.${key}`, value[key], `is not an option here (known: ${known.length === 0 ? 'none' : known.join(', ')})`);
  }
}

function nodeOf(node: unknown, path: string, engines: readonly string[]): { engine: string; options: Record<string, unknown> } {
  if (!isObject(node)) throw new InvalidConfigError(path, node, 'must be a node { engine, options }');
  onlyKeys(node, ['engine', 'options'], path);
  if (typeof node.engine !== 'string' || !engines.includes(node.engine)) throw new InvalidConfigError(`${path}.engine`, node.engine, `must be one of ${engines.join(', ')}`);
  const options = node.options ?? {};
  if (!isObject(options)) throw new InvalidConfigError(`${path}.options`, options, 'must be an object');
  return { engine: node.engine, options };
}

function planProcessors(nodes: unknown, path: string): ProcessorPlan[] {
  if (nodes === undefined) return [];
  if (!Array.isArray(nodes)) throw new InvalidConfigError(path, nodes, `must be an array of processor nodes (${PROCESSOR_ENGINES.join(', ')})`);
  return nodes.map((node, i) => {
    const at = `${path}[${i}]`;
    const { engine, options } = nodeOf(node, at, PROCESSOR_ENGINES);
    // the keys here; the values are checked by the processor itself when it is made (its error at this path)
    if (engine === 'regex-filter') {
      onlyKeys(options, ['type', 'patterns'], `${at}.options`);
      return { path: at, make: () => regexFilter(options as unknown as RegexFilterOptions) };
    }
    if (engine === 'name-allowlist') {
      onlyKeys(options, ['names'], `${at}.options`);
      return { path: at, make: () => nameAllowlist(options.names as string[]) };
    }
    onlyKeys(options, ['paths'], `${at}.options`);
    return { path: at, make: () => redact(options.paths as string[]) };
  });
}

function planBackends(nodes: unknown, path: string, extras: TrackerConfigExtras): Array<[string, BackendPlan]> {
  if (!isObject(nodes)) throw new InvalidConfigError(path, nodes, `must be an object of name → backend node (${BACKEND_ENGINES.join(', ')})`);
  return Object.entries(nodes).map(([name, node]) => {
    const at = `${path}.${name}`;
    checkBackendName(name, at);
    return [name, planBackend(node, at, extras)];
  });
}

/** The keys of a backend node; its values are checked by the backend itself when it is made (its error at this path). */
function planBackend(node: unknown, path: string, extras: TrackerConfigExtras): BackendPlan {
  const { engine, options } = nodeOf(node, path, BACKEND_ENGINES);
  const at = `${path}.options`;
  switch (engine) {
    case 'routing':
      onlyKeys(options, ['processors', 'backends'], at);
      return { path, engine, processors: planProcessors(options.processors, `${at}.processors`), backends: planBackends(options.backends, `${at}.backends`, extras) };
    case 'memory':
      onlyKeys(options, [], at);
      return { path, engine, options };
    case 'logger':
      onlyKeys(options, ['level', 'maxEventSize'], at);
      return { path, engine, options };
    case 'http':
      onlyKeys(options, HTTP_KEYS, at);
      return { path, engine, options };
    default:
      onlyKeys(options, NATS_KEYS, at);
      // not the backend's check: the config's nc is given apart from it
      if (options.servers === undefined && extras.nc === undefined) throw new InvalidConfigError(`${at}.servers`, options.servers, 'is required when no NATS connection (nc) is given with the config');
      return { path, engine: 'nats', options };
  }
}

function hasNats(plans: Array<[string, BackendPlan]>): boolean {
  return plans.some(([, plan]) => plan.engine === 'nats' || (plan.engine === 'routing' && hasNats(plan.backends)));
}

/**
 * A construction error at the node `path`: a backend's own field (`natsBackend.subject`) becomes
 * the config's (`backends.xref.options.subject`); anything else gets the path in front. The
 * backend's error stays the cause.
 */
function withPath(path: string, error: unknown): Error {
  if (isXrefError(error)) {
    const field = error.field;
    const dot = field?.indexOf('.') ?? -1;
    if (field !== undefined && dot > 0 && error.message.startsWith(`config ${field}`)) {
      const own = `${path}.options.${field.slice(dot + 1)}`;
      return new XrefError(error.code, `config ${own}${error.message.slice(`config ${field}`.length)}`, { field: own, cause: error });
    }
    return new XrefError(error.code, `config ${path}: ${error.message.replace(/^config /, '')}`, { field: path, cause: error });
  }
  return new XrefError('XREF_INVALID_CONFIG', `config ${path} could not be built: ${(error as Error)?.message ?? String(error)}`, { field: path, cause: error });
}

function makeProcessor(plan: ProcessorPlan): Processor {
  try {
    return plan.make();
  } catch (error) {
    throw withPath(plan.path, error);
  }
}

/**
 * Builds the tracker of `config` (see TrackerConfig), with `extras` for what a plain config cannot
 * hold (a logger, an onDrop, a NATS connection). Rejects with an XREF_INVALID_CONFIG error naming
 * the path of the first bad field; what it built by then is closed.
 */
export async function trackerFromConfig(config: TrackerConfig, extras: TrackerConfigExtras = {}): Promise<Tracker> {
  if (!isObject(config)) throw new InvalidConfigError('tracker config', config, 'must be an object { source?, ids?, processors?, backends }');
  onlyKeys(config, ['source', 'ids', 'processors', 'backends'], 'tracker config');
  if (config.source !== undefined && (typeof config.source !== 'string' || config.source.length === 0)) throw new InvalidConfigError('source', config.source, 'must be a non-empty string');
  const source = config.source ?? 'tracker';
  const processors = planProcessors(config.processors, 'processors');
  const backends = planBackends(config.backends, 'backends', extras);
  const nats = hasNats(backends) ? (await import('./nats-backend.ts')).natsBackend : undefined;

  const built: Backend[] = [];
  const make = (plan: BackendPlan): Backend => {
    let backend: Backend;
    try {
      switch (plan.engine) {
        case 'routing':
          backend = routingBackend({
            processors: plan.processors.map(makeProcessor),
            backends: Object.fromEntries(plan.backends.map(([name, child]) => [name, make(child)])),
          });
          break;
        case 'memory':
          backend = memoryBackend();
          break;
        case 'logger':
          backend = loggerBackend(plan.options as Parameters<typeof loggerBackend>[0]);
          break;
        case 'http':
          backend = httpBackend(plan.options as unknown as HttpBackendOptions);
          break;
        case 'nats': {
          const options = { subject: subjects.in(source), ...plan.options } as NatsBackendOptions;
          if (options.servers === undefined && extras.nc !== undefined) options.nc = extras.nc;
          backend = (nats as (options: NatsBackendOptions) => Backend)(options);
          break;
        }
      }
    } catch (error) {
      // an error of a node under this one already names its own path
      throw isXrefError(error) && error.field?.startsWith(`${plan.path}.`) ? error : withPath(plan.path, error);
    }
    built.push(backend);
    return backend;
  };
  try {
    return createTracker({
      source,
      ids: config.ids,
      processors: processors.map(makeProcessor),
      backends: Object.fromEntries(backends.map(([name, plan]) => [name, make(plan)])),
      logger: extras.logger,
      onDrop: extras.onDrop,
    });
  } catch (error) {
    // a top-level processor or the tracker itself refused: close what was built
    await Promise.allSettled(built.map((backend) => backend.close?.({ timeoutMs: 0 })));
    throw error;
  }
}
