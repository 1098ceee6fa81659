// A node:test reporter that prints nothing but one JSON line per skipped or todo test
// ({ kind, name, file, reason }) to its destination. scripts/run-tests.mjs runs it next to the
// normal reporter and fails a CI run (CI=true or CI=1) when the destination is not empty.
// Imports: nothing.
export default async function* skipReporter(source) {
  for await (const ev of source) {
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const d = ev.data;
    const kind = d.skip !== undefined && d.skip !== false ? 'skip' : d.todo !== undefined && d.todo !== false ? 'todo' : undefined;
    if (!kind) continue;
    const reason = kind === 'skip' ? d.skip : d.todo;
    yield JSON.stringify({ kind, name: d.name, file: d.file ?? null, reason: typeof reason === 'string' ? reason : '' }) + '\n';
  }
}
