#!/usr/bin/env node
// The `lexicons` command: a thin launcher for the compiled CLI (dist/src/main/cli.js).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/main/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('lexicons: dist/ is missing; build first with `npm run build`\n');
  process.exit(1);
}
const { run } = await import(cli.href);
await run(process.argv.slice(2));
