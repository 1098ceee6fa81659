/**
 * A separate process for the folder-lock tests: `node --import tsx lock-holder.ts DIR MODE`.
 *  hold       take the lock, print "got <pid>", hold it until stdin closes, then release and exit 0
 *  exit       take the lock, print "got <pid>", exit without releasing (the exit hook must)
 *  wait-term  take the lock, print "got <pid>", wait for SIGTERM with no handler of its own
 *  race GO    print "ready", wait for the file GO to exist, try the lock: "got <pid>" (then hold as
 *             `hold`) or "locked <message>" and exit
 */
import { existsSync } from 'node:fs';
import { lockFolder } from '../../src/card/os/folder-lock.js';

const [dir, mode, go] = process.argv.slice(2) as [string, string, string | undefined];

function hold(): void {
  const lock = lockFolder(dir, { command: `lock-holder ${mode}` });
  process.stdout.write(`got ${process.pid}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    lock.release();
    process.exit(0);
  });
}

if (mode === 'hold') hold();
else if (mode === 'exit') {
  lockFolder(dir, { command: 'lock-holder exit' });
  process.stdout.write(`got ${process.pid}\n`, () => process.exit(0));
} else if (mode === 'wait-term') {
  lockFolder(dir, { command: 'lock-holder wait-term' });
  process.stdout.write(`got ${process.pid}\n`);
  setInterval(() => undefined, 1000); // keeps the process alive until the signal
} else if (mode === 'race') {
  process.stdout.write('ready\n');
  const deadline = Date.now() + 60_000;
  while (!existsSync(go!)) {
    if (Date.now() > deadline) process.exit(3);
  }
  try {
    hold();
  } catch (e) {
    process.stdout.write(`locked ${(e as Error & { code?: string }).code} ${(e as Error).message}\n`, () => process.exit(0));
  }
} else {
  process.exit(2);
}
