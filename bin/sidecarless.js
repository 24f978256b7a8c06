#!/usr/bin/env node
// Entry point of the `sidecarless` command: runs the compiled CLI (npm run build, or deploy/local/setup.sh).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('sidecarless: not built yet; run `bash deploy/local/setup.sh` (or `npm run build`) first');
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
