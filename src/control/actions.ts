import type { NatsConnection } from '@nats-io/transport-node';
import { type ForgetRequest, type Requested, type UnlinkRequest, type UnsuppressRequest, requestForget, requestUnlink, requestUnsuppress } from './requests.ts';
import { type ErasureReceipts, type ForgetStatusAnswer, forgetStatus } from './status.ts';

/**
 * The control requests and a forget's status, as the admin routes call them: on a NATS connection
 * (`controlActions`), or anything else a test hands the app.
 */
export interface ControlActions {
  forget(args: ForgetRequest): Promise<Requested>;
  unsuppress(args: UnsuppressRequest): Promise<Requested>;
  unlink(args: UnlinkRequest): Promise<Requested>;
  status(request: string): Promise<ForgetStatusAnswer>;
}

/** The control requests on `nc`; `readModel`: the read model that is run, whose receipt a forget's `done` waits for. */
export function controlActions(nc: NatsConnection, readModel?: ErasureReceipts): ControlActions {
  return {
    forget: (args) => requestForget(nc, args),
    unsuppress: (args) => requestUnsuppress(nc, args),
    unlink: (args) => requestUnlink(nc, args),
    status: (request) => forgetStatus(nc, request, readModel),
  };
}
