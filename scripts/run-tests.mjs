// Runs every *.test.ts under test/ (or the folders/files given) with node:test through tsx.
// Node 20's --test does not expand globs, so the file list is built here. Tests run the TypeScript
// sources: `setls` imports resolve to src/ (condition setls-source) and bin/setls.mjs runs src/ too.
// Skipped and todo tests are collected by scripts/skip-reporter.mjs (next to the normal reporter,
// whose output is unchanged) and listed at the end; under CI (CI=true or CI=1) any skipped or todo
// test fails the run: in CI a missing peer or a failed set-up must fail, never pass silently.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

function collect(p, out) {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const name of readdirSync(p).sort()) {
      if (name === 'fixtures' || name === 'node_modules') continue;
      collect(join(p, name), out);
    }
  } else if (p.endsWith('.test.ts')) out.push(p);
  return out;
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = (roots.length ? roots : ['test']).flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

// Reporters: the caller's (each needs a destination; stdout unless given), else node's default for
// this stdout (spec on a terminal, tap otherwise), plus the skip collector into a private file.
const isReporter = (f) => f === '--test-reporter' || f.startsWith('--test-reporter=');
const isDestination = (f) => f === '--test-reporter-destination' || f.startsWith('--test-reporter-destination=');
const userReporters = flags.filter(isReporter).length;
const reporterFlags =
  userReporters === 0
    ? [`--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout']
    : flags.some(isDestination)
      ? []
      : Array.from({ length: userReporters }, () => '--test-reporter-destination=stdout');
const skipDir = mkdtempSync(join(tmpdir(), 'setls-skips-'));
const skipFile = join(skipDir, 'skips.jsonl');
const skipReporter = fileURLToPath(new URL('./skip-reporter.mjs', import.meta.url));

const res = spawnSync(
  process.execPath,
  [
    // setls-source: `import … from 'setls'` (examples, docs/api.md) resolves to src/ (package.json exports).
    '--conditions=setls-source', '--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000',
    ...flags, ...reporterFlags,
    `--test-reporter=${skipReporter}`, `--test-reporter-destination=${skipFile}`,
    ...files,
  ],
  // SETLS_FROM_SOURCE: bin/setls.mjs runs src/ through tsx, never a stale dist/.
  { stdio: 'inherit', env: { ...process.env, SETLS_FROM_SOURCE: '1' } },
);

// Tests left out on purpose by the caller's own filter flags are not skips of the suite.
const filtered = [];
if (flags.some((f) => f.startsWith('--test-name-pattern') || f.startsWith('--test-skip-pattern'))) filtered.push('test name does not match pattern');
if (flags.some((f) => f === '--test-only' || f.startsWith('--test-only='))) filtered.push("'only' option not set");

let skips = [];
try {
  skips = readFileSync(skipFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((s) => !(s.kind === 'skip' && filtered.includes(s.reason)));
} catch {
  skips = []; // no file: the collector saw no skip (or the run died; its status says so)
} finally {
  rmSync(skipDir, { recursive: true, force: true });
}
const ci = process.env.CI === 'true' || process.env.CI === '1';
if (skips.length > 0) {
  const lines = skips.map((s) => `  ${s.kind} ${JSON.stringify(s.name)}${s.reason ? ` — ${s.reason}` : ''}${s.file ? ` (${s.file})` : ''}`);
  console.error(`\n${skips.length} test(s) skipped or todo:\n${lines.join('\n')}`);
  if (ci) {
    console.error(`CI=${process.env.CI}: no test may skip in CI (a missing peer or a failed set-up must fail); failing the run`);
    process.exit(res.status || 1);
  }
}
process.exit(res.status ?? 1);
