/**
 * SIGTERM and SIGINT from the first moment the process runs: `bin/xref.js` catches them before
 * the rest of the command line is even loaded (about a second through the TypeScript loader), so
 * that a signal during start-up is never the default exit 143 with nothing said. `xref serve`
 * takes them over (with any that came already) and stops cleanly; every other command gives
 * them their default meaning back.
 */
const early: NodeJS.Signals[] = [];
let handler: ((signal: NodeJS.Signals) => void) | undefined;
const listener = (signal: NodeJS.Signals) => (handler === undefined ? early.push(signal) : handler(signal));

/** From now on stop signals are kept for the command to take; `received`: those that came already. */
export function catchStopSignals(received: readonly NodeJS.Signals[] = []): void {
  early.push(...received);
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
}

/** Every SIGTERM / SIGINT goes to `onSignal` from now on, those received already first. */
export function takeStopSignals(onSignal: (signal: NodeJS.Signals) => void): void {
  handler = onSignal;
  for (const signal of early.splice(0)) onSignal(signal);
}

/** The signals' default meaning back; one received already ends the process as it would have. */
export function releaseStopSignals(): void {
  process.off('SIGTERM', listener);
  process.off('SIGINT', listener);
  const first = early.shift();
  if (first !== undefined) process.kill(process.pid, first);
}
