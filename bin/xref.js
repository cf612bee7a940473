#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npx xref` works in a checkout with no build.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
