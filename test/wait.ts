/**
 * Waiting in tests without timing assumptions: poll a condition until it holds, with a generous
 * deadline that only bounds a hung test (it is never the thing being tested). A condition that is
 * not reached fails with `what` in the message.
 * Imports: nothing.
 */

/** Resolves as soon as `cond()` holds (checked every `everyMs`); rejects after `timeoutMs`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
