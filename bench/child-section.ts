/**
 * A bench section run as its own process (`node bench/<script>.ts --json …`): the last line of its
 * stdout is the section's JSON ({ ok, failed?, … }). No report, or a non-zero exit with ok true, is
 * a failure that says why (how the process ended, the end of its stderr). imports node only.
 */
import type { SpawnSyncReturns } from 'node:child_process';

export function sectionOf<T extends { readonly ok: boolean; readonly failed?: string }>(script: string, r: SpawnSyncReturns<string>): T {
  const how = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
  const tail = (r.stderr ?? '').slice(-500);
  let section: T | undefined;
  try {
    const parsed = JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '') as T;
    if (typeof parsed.ok === 'boolean') section = parsed;
  } catch {
    section = undefined;
  }
  if (!section) return { ok: false, failed: `${script} gave no report (${how}): ${tail}` } as T;
  if (r.status !== 0 && section.ok) return { ...section, ok: false, failed: `${script} ${how}: ${tail}` };
  return section;
}
