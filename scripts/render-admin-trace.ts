/**
 * Renders the captured admin session (test/card/isd/trace.ts: a deterministic security domain
 * driven through APDUs) into docs/admin-protocol.md §10. `--write` rewrites the section; without
 * it, exits 1 when the doc is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withTrace } from '../test/card/isd/trace.js';

const doc = resolve(fileURLToPath(import.meta.url), '../../docs/admin-protocol.md');
const before = readFileSync(doc, 'utf8');
const after = withTrace(before);
if (process.argv.includes('--write')) writeFileSync(doc, after);
else if (after !== before) {
  console.error('docs/admin-protocol.md: the captured admin session is out of date; run node --import tsx scripts/render-admin-trace.ts --write');
  process.exit(1);
}
