/**
 * Waiting in tests without timing assumptions: poll a condition until it holds, or wait for a
 * promise, with a generous deadline that only bounds a hung test (it is never the thing being
 * tested). A condition not reached fails with `what` (a string, or a function called at the end so
 * the message shows the final state).
 * Imports: nothing.
 */

type What = string | (() => string);
const say = (what: What): string => (typeof what === 'string' ? what : what());

/** Resolves as soon as `cond()` holds (checked every `everyMs`); rejects after `timeoutMs`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: What, timeoutMs = 30_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${say(what)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `p`, or a rejection naming `what` after `timeoutMs` (bounds a hang; not a timing check). */
export async function within<T>(p: Promise<T>, what: What, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no end after ${timeoutMs} ms: ${say(what)}`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}
