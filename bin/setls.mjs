#!/usr/bin/env node
// The `setls` command: runs the compiled CLI (dist/cli/main.js, built by `npm run build`, by npm
// install in a checkout and by npm pack). In a checkout, SETLS_FROM_SOURCE=1 runs the TypeScript
// sources through tsx instead (the test runner sets it, so tests never run a stale build).
import { existsSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const source = new URL('src/cli/main.ts', root);
if (process.env.SETLS_FROM_SOURCE === '1' && existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  const main = new URL('dist/cli/main.js', root);
  if (!existsSync(main)) {
    console.error(
      existsSync(source)
        ? 'setls: dist/ is missing in this checkout: run `npm run build` (or `npm start` / `npm run setls -- …`, which run the sources through tsx)'
        : 'setls: dist/cli/main.js is missing: this setls package is incomplete; reinstall it',
    );
    process.exit(1);
  }
  await import(main.href);
}
