/**
 * Crash-equivalence trials: a seeded hard log is published to a nats-server of the trial's own
 * while `xref serve` runs as a process of its own and is SIGKILLed at random points (during
 * start-up, while a checkpoint is being written, anywhere), paused with SIGSTOP, and while the
 * server itself is SIGKILLed and restarted under a backlog. Then the three output streams are
 * compared with the offline engine (`groupEvents`) run on the log as XREF_IN holds it.
 *
 *   const result = await chaosTrial({ seed: 7, kills: 6 });
 *   expect(result.differences).toEqual([]);
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import { random } from './web-log.ts';
import { requestUnlink } from '../../src/control/requests.ts';
import { controlVerb, parseControl } from '../../src/domain/control.ts';
import type { ConfigInput } from '../../src/domain/config.ts';
import { Grouper } from '../../src/group.ts';
import { ControlStore } from '../../src/nats/control-store.ts';
import { logger } from '../../src/log.ts';
import { JetStreamPublisher } from '../../src/nats/publisher.ts';
import { BUCKETS, STREAMS, kvStream, subjects } from '../../src/nats/subjects.ts';
import { ensureTopology } from '../../src/nats/topology.ts';
import { chaosLog } from './chaos-log.ts';
import { ackFloor, exited, startEngineProcess } from './engine-process.ts';
import { type NatsServerHandle, startNatsServer } from './nats-server.ts';
import { readStream, waitFor } from './streams.ts';

export interface ChaosOptions {
  readonly seed: number;
  /** SIGKILLs of the engine (default 6). */
  readonly kills?: number;
  /** Events in the log (default 22,000). */
  readonly events?: number;
}

export interface ChaosResult {
  readonly seed: number;
  readonly events: number;
  readonly inputs: number;
  /** What was done, in order: `kill:startup`, `kill:checkpoint`, `kill:anywhere`, `nats`, `pause`. */
  readonly actions: string[];
  readonly kills: number;
  /** Engines that found no server at start, exited 1 and were started again. */
  readonly supervisorRestarts: number;
  readonly outputs: { groups: number; retracted: number; unmatched: number; audit: number };
  /** Longest time from the restarted server being ready to the engine storing a new output (ms). */
  readonly resumeMs: number;
  readonly resumeLog: string;
  /** Empty when the streams equal the oracle and hold each output id once; else what differs. */
  readonly differences: string[];
}

const log = logger.child({ component: 'chaos' });

const OUTPUT_STREAMS = [STREAMS.groups, STREAMS.unmatched, STREAMS.audit];

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sorted difference of two multisets, as `+item` (only in `actual`) and `-item` (only in `expected`). */
function multisetDiff(what: string, actual: string[], expected: string[]): string[] {
  const count = new Map<string, number>();
  for (const item of actual) count.set(item, (count.get(item) ?? 0) + 1);
  for (const item of expected) count.set(item, (count.get(item) ?? 0) - 1);
  const out: string[] = [];
  for (const [item, n] of count) if (n !== 0) out.push(`${what} ${n > 0 ? '+' : '-'}${item}${Math.abs(n) > 1 ? ` ×${Math.abs(n)}` : ''}`);
  return out.sort();
}

function duplicates(what: string, ids: Array<string | undefined>): string[] {
  const seen = new Set<string | undefined>();
  const out: string[] = [];
  for (const id of ids) {
    if (seen.has(id)) out.push(`${what} holds ${id} twice`);
    seen.add(id);
  }
  return out;
}

class Trial {
  engine: (ChildProcess & { output: () => string }) | undefined;
  readonly actions: string[] = [];
  readonly unexpected: string[] = [];
  kills = 0;
  supervisorRestarts = 0;
  resumeMs = 0;
  /** The engine's output when it resumed (its logs, with XREF_CHAOS_LOG_LEVEL). */
  resumeLog = '';
  private readonly env: Record<string, string>;

  constructor(
    readonly server: NatsServerHandle,
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    configFile: string,
    private readonly rand: () => number,
  ) {
    this.env = {
      XREF_CONFIG: configFile,
      // frequent checkpoints, so that kills land during them; forced passivation
      XREF_CHECKPOINT_EVERY: String(200 + Math.floor(rand() * 800)),
      XREF_CHECKPOINT_MS: '400',
      XREF_MAX_LIVE_ACTORS: '300',
      XREF_PASSIVATE_AFTER_MS: '0',
      // a lease shorter than the longest pause: the paused engine is fenced, and takes the lease back
      XREF_LEASE_TTL_MS: '1500',
      // XREF_CHAOS_LOG_LEVEL=info keeps the engines' logs for a trial's failure message
      XREF_LOG_LEVEL: process.env.XREF_CHAOS_LOG_LEVEL ?? 'warn',
    };
  }

  /**
   * Starts an engine, supervised as a process manager would: one that finds no server at start
   * says so and exits (2), and is started again. Any other exit of its own is a failure.
   */
  start(): void {
    const engine = startEngineProcess(this.server.url, this.env);
    engine.once('exit', (code, signal) => {
      if (signal === 'SIGKILL' || signal === 'SIGTERM' || code === 0 || this.engine !== engine) return;
      if (/no NATS server answers|cannot connect to NATS/.test(engine.output())) {
        this.supervisorRestarts++;
        this.start();
      } else this.unexpected.push(`an engine exited by itself (${code ?? signal}): ${engine.output().slice(-2000)}`);
    });
    this.engine = engine;
  }

  async kill(): Promise<void> {
    const engine = this.engine;
    if (engine === undefined) return;
    this.engine = undefined;
    engine.kill('SIGCONT');
    engine.kill('SIGKILL');
    await exited(engine);
    this.kills++;
  }

  /** Kills the engine right after it stores a KV record: a checkpoint being written. */
  async killDuringCheckpoint(): Promise<void> {
    const lastKvSeq = () =>
      this.answered(async () => {
        const [links, snapshots] = await Promise.all([this.jsm.streams.info(kvStream(BUCKETS.links)), this.jsm.streams.info(kvStream(BUCKETS.snapshots))]);
        return links.state.last_seq + snapshots.state.last_seq;
      });
    const before = await lastKvSeq();
    await waitFor('a checkpoint to start', async () => (await lastKvSeq()) > before || this.engine?.exitCode !== null, 20_000).catch(() => undefined);
    await this.kill();
  }

  /**
   * The server is SIGKILLed while the engine has a backlog (inputs stored, not yet applied), down
   * for a while, then restarted; resolves once the engine has applied all of it. `resumeMs`: from
   * the server being ready again to the engine's first new output stored.
   */
  async natsOutage(backlog: Promise<void>): Promise<void> {
    const lastInput = () => this.answered(async () => (await this.jsm.streams.info(STREAMS.in)).state.last_seq);
    await waitFor('a backlog', async () => (await lastInput()) - (await this.currentAckFloor()) > 200, 10_000).catch(() => undefined);
    const killedAt = Date.now();
    await this.server.kill('SIGKILL');
    await pause(300 + this.rand() * 2500); // the outage itself
    await this.server.restart();
    const ready = Date.now();
    const before = await this.outputSeqs();
    let stored = false;
    void backlog.then(() => (stored = true));
    await waitFor('the engine to resume after the server came back and apply the backlog', async () => stored && (await this.currentAckFloor()) >= (await lastInput()), 60_000);
    // the first output the server stored after it was ready again, by the server's own clock
    const firsts = await Promise.all(
      OUTPUT_STREAMS.map((stream, i) => this.answered(async () => (await this.jsm.streams.getMessage(stream, { seq: before[i]! + 1 }))?.time.getTime())),
    );
    const first = Math.min(...firsts.map((time) => time ?? Infinity));
    if (Number.isFinite(first) && first - ready > this.resumeMs) {
      this.resumeMs = first - ready;
      this.resumeLog = `server killed at ${killedAt}, ready at ${ready}, first new output at ${first}\n${this.engine?.output().slice(-8000) ?? ''}`;
    }
  }

  async suspend(): Promise<void> {
    const engine = this.engine;
    if (engine === undefined) return;
    engine.kill('SIGSTOP');
    await pause(500 + this.rand() * 2000); // the pause itself
    engine.kill('SIGCONT');
  }

  /** The last sequence of each output stream. */
  outputSeqs(): Promise<number[]> {
    return this.answered(() => Promise.all(OUTPUT_STREAMS.map(async (stream) => (await this.jsm.streams.info(stream)).state.last_seq)));
  }

  currentAckFloor(): Promise<number> {
    return this.answered(() => ackFloor(this.jsm));
  }

  /** What `ask` answers once the server does (it may be coming back), within a minute. */
  async answered<T>(ask: () => Promise<T>): Promise<T> {
    let answer: T | undefined;
    await waitFor('the nats-server to answer', () => ask().then((value) => ((answer = value), true), () => false), 60_000);
    return answer as T;
  }
}

/** Runs one trial; resolves with what it did and every difference from the oracle. */
export async function chaosTrial(options: ChaosOptions): Promise<ChaosResult> {
  const { seed, kills = 6, events: size = 22_000 } = options;
  // the trial's schedule: mulberry32 on the seed mixed with a constant (the log draws from the seed itself)
  const rand = random(seed ^ 0x9e3779b9);
  const { events, config } = chaosLog({ seed, events: size });
  const dir = mkdtempSync(join(tmpdir(), 'xref-chaos-'));
  const configFile = join(dir, 'xref.json');
  writeFileSync(configFile, JSON.stringify(config));
  const server = await startNatsServer();
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const trial = new Trial(server, nc, await jetstreamManager(nc), configFile, rand);
  try {
    await ensureTopology(nc, trial.jsm, log);
    const publisher = new JetStreamPublisher(nc, log);
    // a schedule of chaos, one action after some of the log's chunks
    const plan = [...Array.from({ length: kills }, (_, i) => ['kill:startup', 'kill:checkpoint', 'kill:anywhere'][i % 3]!), 'nats', 'pause'];
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    const chunks = plan.length + 2;
    trial.start();
    for (let chunk = 0; chunk < chunks; chunk++) {
      const part = events.slice(Math.floor((chunk * events.length) / chunks), Math.floor(((chunk + 1) * events.length) / chunks));
      // an unlink or two of cookies seen earlier, stored before the chunk's events (and before its chaos)
      if (chunk >= 1) {
        const seen = events.slice(0, Math.floor((chunk * events.length) / chunks));
        for (const value of unlinksOf(seen, rand)) await trial.answered(() => requestUnlink(nc, { kind: 'cookie', value, block: rand() < 0.3, by: 'chaos' }));
      }
      const stored = Promise.all(part.map((event) => publisher.publish(subjects.in('chaos'), JSON.stringify(event), String(event.id)))).then(() => undefined);
      const action = chunk >= 1 ? plan[chunk - 1] : undefined;
      if (action !== undefined) trial.actions.push(action);
      if (trial.engine === undefined) trial.start();
      switch (action) {
        case 'kill:startup':
          await trial.kill();
          trial.start();
          await pause(rand() * 1500); // somewhere in its start-up
          await trial.kill();
          trial.start();
          break;
        case 'kill:checkpoint':
          await trial.killDuringCheckpoint();
          trial.start();
          break;
        case 'kill:anywhere':
          await pause(rand() * 1500);
          await trial.kill();
          trial.start();
          break;
        case 'nats':
          await trial.natsOutage(stored);
          break;
        case 'pause':
          await trial.suspend();
          break;
      }
      await stored;
    }
    await publisher.close();

    // the last engine finishes the log, then stops cleanly
    const { state } = await trial.jsm.streams.info(STREAMS.in);
    await waitFor('the engine to finish the log', async () => (await trial.currentAckFloor()) >= state.last_seq || trial.unexpected.length > 0, 120_000);
    const last = trial.engine!;
    last.kill('SIGTERM');
    const code = await exited(last);
    if (code !== 0) trial.unexpected.push(`the last engine exited ${code}: ${last.output().slice(-2000)}`);
    trial.engine = undefined;
    return { seed, events: events.length, inputs: state.last_seq, actions: trial.actions, kills: trial.kills, supervisorRestarts: trial.supervisorRestarts, resumeMs: trial.resumeMs, resumeLog: trial.resumeLog, ...(await compare(nc, events, config, trial.unexpected)) };
  } catch (error) {
    throw new Error(`seed ${seed} after ${trial.actions.join(', ')}: ${(error as Error).message}\nengine output: ${trial.engine?.output().slice(-6000)}`, { cause: error });
  } finally {
    if (trial.engine !== undefined) await trial.kill();
    await nc.close().catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One or two cookies of `earlier` to unlink. */
function unlinksOf(earlier: ReadonlyArray<Record<string, unknown>>, rand: () => number): string[] {
  const out: string[] = [];
  for (let tries = 0; tries < 20 && out.length < 1 + Math.floor(rand() * 2); tries++) {
    const ids = earlier[Math.floor(rand() * earlier.length)]?.ids as Record<string, unknown> | undefined;
    if (typeof ids?.cookie === 'string' && !out.includes(ids.cookie)) out.push(ids.cookie);
  }
  return out;
}

/** The offline engine on XREF_IN as stored: events, and control inputs at their place. */
async function offline(nc: NatsConnection, inputs: Array<{ subject: string; data: unknown }>, config: ConfigInput) {
  const grouper = new Grouper(config, { hasher: await new ControlStore(nc).hasher() });
  for (const { subject, data } of inputs) {
    if (subject.startsWith(subjects.ctlPrefix)) grouper.control(parseControl(controlVerb(subject.slice(subjects.ctlPrefix.length)), data));
    else grouper.add(data);
  }
  return grouper.finish();
}

type GroupPayload = { user: { kind: string; id: string }; event?: { id: string }; output?: string };
type UnmatchedPayload = { reason: string; event: { id: string } };

/** The three output streams against the offline engine on XREF_IN as stored: what differs (nothing, when equal). */
export async function compare(nc: NatsConnection, events: ReadonlyArray<Record<string, unknown>>, config: ConfigInput, unexpected: string[]) {
  const log = await readStream<{ id: string }>(nc, STREAMS.in);
  const oracle = await offline(nc, log, config);
  const inputs = log.filter((m) => !m.subject.startsWith(subjects.ctlPrefix));
  // what stands: the resolutions less those an unlink retracted
  const published = await readStream<GroupPayload>(nc, STREAMS.groups);
  const retracted = new Set(published.flatMap((m) => (m.data.output === undefined ? [] : [m.data.output])));
  const groups = published.filter((m) => m.data.event !== undefined && !retracted.has(m.msgId!));
  const unmatched = await readStream<UnmatchedPayload>(nc, STREAMS.unmatched);
  const audit = await readStream(nc, STREAMS.audit);
  const expectedGroups = Object.entries(oracle.groups).flatMap(([kind, users]) =>
    Object.entries(users).flatMap(([id, vias]) => Object.values(vias).flatMap((values) => Object.values(values).flatMap((list) => list.map((e) => `${kind}:${id} ${e.id}`)))),
  );
  const differences = [
    ...unexpected,
    // the log holds every event published, once (the same id again is stored once)
    ...multisetDiff('inputs', inputs.map((m) => m.data.id), [...new Set(events.map((e) => String(e.id)))]),
    ...duplicates(STREAMS.groups, published.map((m) => m.msgId)),
    ...duplicates(STREAMS.unmatched, unmatched.map((m) => m.msgId)),
    ...duplicates(STREAMS.audit, audit.map((m) => m.msgId)),
    ...multisetDiff('groups', groups.map((m) => `${m.data.user.kind}:${m.data.user.id} ${m.data.event!.id}`), expectedGroups),
    ...multisetDiff(
      'unmatched',
      unmatched.map((m) => `${m.data.event.id} ${m.data.reason}`),
      oracle.unmatched.filter((u) => u.reason !== 'unlinked').map((u) => `${u.event.id} ${u.reason}`),
    ),
    ...multisetDiff('audit', audit.map((m) => m.msgId ?? '?'), [...oracle.audit, ...oracle.control].map((a) => a.outputId)),
  ];
  return { outputs: { groups: groups.length, retracted: retracted.size, unmatched: unmatched.length, audit: audit.length }, differences };
}
