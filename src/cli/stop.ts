/**
 * How a serving command (serve https, serve coap, demo) says who it is and stops: it prints its PID
 * and how to stop it; on the first SIGINT/SIGTERM it closes everything it started — listeners, card
 * sessions (close_notify), the admin socket, the card (its folder lock) — and exits 0; if that takes
 * longer than `graceMs`, or a second signal comes, it exits at once (status 1 / 130), and the
 * folder lock goes with the process (the lock's own exit handler; a dead holder's lock is stale).
 * `npm start` runs the demo with `exec`, so npm's own SIGTERM/SIGINT reaches this process.
 * imports nothing of the project.
 */

/** The line telling how to stop this process. */
export function stopHint(pid: number = process.pid): string {
  return `setls: running as PID ${pid}; stop it with Ctrl-C or \`kill ${pid}\` (it closes its listeners and lets go of the card)`;
}

export function stopOnSignals(close: () => Promise<void>, opts: { graceMs?: number; say?: (line: string) => void } = {}): void {
  const say = opts.say ?? ((l: string) => void process.stderr.write(l + '\n'));
  const graceMs = opts.graceMs ?? 10_000;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      say(`setls: ${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    say(`setls: ${signal}: stopping (closing sessions and the card)`);
    const force = setTimeout(() => {
      say(`setls: still stopping after ${graceMs} ms: exiting now`);
      process.exit(1);
    }, graceMs);
    force.unref();
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        say(`setls: error while stopping: ${(e as Error)?.message ?? String(e)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
