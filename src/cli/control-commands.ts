/**
 * `xref forget <kind> <id>`, `xref erasure <request>`, `xref unsuppress <kind> <value>` and
 * `xref unlink <kind> <value>`: the control inputs of docs/erasure.md from a terminal, written
 * into the log on NATS_URL as the admin routes write them, by `cli:<os user>`. The request id
 * goes to stdout (for scripts), what to do next to stderr.
 *
 * The CLI reads no read model: its status is the engine's part (`erased` counts as `done`); the
 * read model's receipt is in `GET /v1/forget/<request>` of a server that runs the projection.
 *
 * Exit status: 0 once the request is in the log (with `--wait`: done); 1 when `--wait` runs out
 * of time or `erasure` does not know the request; 2 for a bad argument or a failure (main.ts).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isXrefError } from '../domain/errors.ts';
import { componentLogger } from '../log.ts';
import { ensureTopology } from '../nats/topology.ts';
import { type Requested, checkKind, checkValue, cliUser, requestForget, requestUnlink, requestUnsuppress } from '../control/requests.ts';
import { type ForgetStatusAnswer, checkRequestId, forgetStatus } from '../control/status.ts';
import type { CommandIo } from './group-command.ts';
import type { NatsTarget } from './publish-command.ts';
import { connectOrEmbed } from './serve-command.ts';

export interface ForgetCommandOptions {
  /** false (`--no-suppress`): erase, but let later events with the ids in again. */
  suppress?: boolean;
  /** Wait until the forget is done, then print its status. */
  wait?: boolean;
  /** How long `--wait` waits, in ms (default 60000). */
  timeout?: number;
}

const DEFAULT_WAIT_MS = 60_000;
const POLL_MS = 250;

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** Runs `work` on a connection to the target's NATS (embedding one as `xref serve` would), closed after. */
async function onNats<T>(target: NatsTarget, name: string, work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const running = await connectOrEmbed(target.natsUrl, target.dataDir, name);
  try {
    return await work(running.nc);
  } finally {
    await running.stop();
  }
}

/**
 * Checks the arguments, then writes one control input on the target's NATS (XREF_IN made first
 * if this installation has none yet) and prints its request id; `then` runs on the same
 * connection.
 */
async function writeRequest(
  target: NatsTarget,
  verb: string,
  args: { kind: string; value: string; name: 'id' | 'value' },
  send: (nc: NatsConnection) => Promise<Requested>,
  io: CommandIo,
  then: (nc: NatsConnection, request: string) => Promise<number> = async () => 0,
): Promise<number> {
  // a bad argument is named before anything is connected to
  checkKind(args.kind);
  checkValue(args.value, args.name);
  return onNats(target, `xref-${verb}`, async (nc) => {
    await ensureTopology(nc, await jetstreamManager(nc), componentLogger(verb));
    const { request } = await send(nc);
    io.stdout.write(`${request}\n`);
    return then(nc, request);
  });
}

/** Polls the forget's status until it is done or `timeoutMs` passed, and answers the last one. */
async function waitDone(nc: NatsConnection, request: string, timeoutMs: number): Promise<ForgetStatusAnswer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await forgetStatus(nc, request);
    if (status.done || Date.now() >= deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
  }
}

/** `xref forget <kind> <id>`: erase a user's identity cluster (and suppress its ids); prints the request id, with `--wait` the final status. */
export async function forgetCommand(kind: string, id: string, options: ForgetCommandOptions, io: CommandIo, target: NatsTarget): Promise<number> {
  const send = (nc: NatsConnection) => requestForget(nc, { kind, id, suppress: options.suppress !== false, by: cliUser() });
  return writeRequest(target, 'forget', { kind, value: id, name: 'id' }, send, io, async (nc, request) => {
    if (options.wait !== true) {
      io.stderr.write(`xref forget: requested; the engine applies it at its place in the log. Where it stands: xref erasure ${request}\n`);
      return 0;
    }
    const timeoutMs = options.timeout ?? DEFAULT_WAIT_MS;
    const status = await waitDone(nc, request, timeoutMs);
    io.stdout.write(json(status));
    if (status.done) return 0;
    io.stderr.write(`xref forget: not done after ${timeoutMs} ms (status ${status.status}): is an engine running (xref serve)? xref erasure ${request} shows where it stands\n`);
    return 1;
  });
}

/** `xref erasure <request>`: where a forget stands, as JSON; exit 1 when the request is not known. */
export async function erasureCommand(request: string, io: CommandIo, target: NatsTarget): Promise<number> {
  checkRequestId(request);
  return onNats(target, 'xref-erasure', async (nc) => {
    try {
      io.stdout.write(json(await forgetStatus(nc, request)));
      return 0;
    } catch (error) {
      if (!isXrefError(error, 'XREF_NOT_FOUND')) throw error;
      io.stderr.write(`xref: ${error.message} (request ids are what xref forget and POST /v1/users/<kind>/<id>/forget printed)\n`);
      return 1;
    }
  });
}

/** `xref unsuppress <kind> <value>`: lift the suppression of one id; prints the request id. */
export async function unsuppressCommand(kind: string, value: string, io: CommandIo, target: NatsTarget): Promise<number> {
  return writeRequest(target, 'unsuppress', { kind, value, name: 'value' }, (nc) => requestUnsuppress(nc, { kind, value, by: cliUser() }), io);
}

/** `xref unlink <kind> <value>`: detach one identifier from its user (`--block`: for good); prints the request id. */
export async function unlinkCommand(kind: string, value: string, options: { block?: boolean }, io: CommandIo, target: NatsTarget): Promise<number> {
  return writeRequest(target, 'unlink', { kind, value, name: 'value' }, (nc) => requestUnlink(nc, { kind, value, block: options.block === true, by: cliUser() }), io);
}
