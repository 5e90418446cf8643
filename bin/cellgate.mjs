#!/usr/bin/env node
// The `cellgate` command. Its code is TypeScript in src/cli/, compiled with the
// rest of the package into build/lib: this only starts it.
import { existsSync } from 'node:fs';

const entry = new URL('../build/lib/src/cli/main.js', import.meta.url);
if (existsSync(entry)) {
  const { main } = await import(entry.href);
  process.exitCode = await main(process.argv.slice(2));
} else {
  process.stderr.write('cellgate needs the built package (build/lib): run npm run build first\n');
  process.exitCode = 1;
}
