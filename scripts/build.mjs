// Builds the package: dist/ from src/ with tsc (tsconfig.build.json: ESM, .d.ts, source maps),
// from a clean dist/ so no output of a deleted source survives. Run by `npm run build` and by npm's
// `prepare` (npm install in a checkout, npm pack, npm publish). Needs the devDependency typescript.
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.error('setls build: typescript is not installed (it is a devDependency: run npm install without --omit=dev)');
  process.exit(1);
}
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
// The web console's static pages (HTML, JS, CSS) are read at run time next to the compiled handler.
if (r.status === 0) cpSync(new URL('../src/operator/console/static', import.meta.url), new URL('../dist/operator/console/static', import.meta.url), { recursive: true });
process.exit(r.status ?? 1);
