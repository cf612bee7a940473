#!/usr/bin/env node
// Stop signals are caught first of all, before about a second of loading: one that comes during
// start-up still stops xref cleanly (src/cli/stop-signals.ts says what each command does with it).
const early = [];
const keep = (signal) => early.push(signal);
process.on('SIGTERM', keep).on('SIGINT', keep);
// `ps` and `top` show `xref <command>` (and a test can see that xref's own code runs)
process.title = ['xref', ...process.argv.slice(2)].join(' ');

// Runs the TypeScript sources directly through tsx, so `npx xref` works in a checkout with no build.
const { register } = await import('tsx/esm/api');
register();
const { catchStopSignals } = await import('../src/cli/stop-signals.ts');
catchStopSignals(early);
process.off('SIGTERM', keep).off('SIGINT', keep);
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
