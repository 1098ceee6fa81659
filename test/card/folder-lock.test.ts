/**
 * One owner of a card folder (src/card/os/folder-lock.ts, SealedStore.open): a second opener gets
 * ERR_CARD_LOCKED naming the holder; stale locks (dead PID, reused PID) are taken over, by exactly one
 * of several racing processes; locks go at close, at exit and on SIGTERM; a store never overwrites a
 * state someone else wrote.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { EmulatedCard } from '../../src/card/index.js';
import { lockFolder, lockHolder, startTimeOf } from '../../src/card/os/folder-lock.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { SELECT, USER_PIN, newCard, send, swOf, tempDir, verify } from './helpers.js';

const HOLDER = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'lock-holder.ts');

interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Resolves with the first stdout line matching `re` (generous deadline). */
  line(re: RegExp): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function child(dir: string, ...args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', HOLDER, dir, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const check = (): void => {
    for (const l of out.split('\n')) {
      for (const w of [...waiters]) {
        if (w.re.test(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  };
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return {
    proc,
    exited,
    line: (re) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line ${re} from the child: ${out} ${err}`)), 60_000);
        exited.then(() => setTimeout(() => reject(new Error(`child exited without ${re}: ${out} ${err}`)), 0));
        waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        check();
      }),
  };
}

const lockFile = (dir: string): string => join(dir, 'lock');

test('a second opener in the same process gets ERR_CARD_LOCKED naming this process; after close() the card opens again', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    const holder = JSON.parse(readFileSync(lockFile(dir), 'utf8')) as { pid: number; command: string; host: string };
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.host, hostname());
    assert.throws(() => EmulatedCard.open({ dir, masterKey }), (e: Error & { code?: string }) => e.code === 'ERR_CARD_LOCKED' && e.message.includes(`this process (pid ${process.pid})`));
    card.close();
    assert.equal(existsSync(lockFile(dir)), false, 'released by close()');
    const again = EmulatedCard.open({ dir, masterKey, owner: 'the second opener' });
    assert.equal(lockHolder(dir)?.command, 'the second opener');
    again.close();
  } finally {
    cleanup();
  }
});

test('another live process holds the folder: ERR_CARD_LOCKED names its PID and command; once it is killed, the stale lock is taken over', async () => {
  const { card, dir, masterKey, cleanup } = newCard();
  card.close();
  const c = child(dir, 'hold');
  try {
    const got = await c.line(/^got \d+/);
    const pid = Number(got.split(' ')[1]);
    assert.equal(pid, c.proc.pid);
    assert.throws(
      () => EmulatedCard.open({ dir, masterKey }),
      (e: Error & { code?: string }) => e.code === 'ERR_CARD_LOCKED' && e.message.includes(`process ${pid}`) && e.message.includes('lock-holder hold'),
    );
    c.proc.kill('SIGKILL'); // no exit hook runs: the lock file stays, stale
    await c.exited;
    assert.equal(existsSync(lockFile(dir)), true);
    const card2 = EmulatedCard.open({ dir, masterKey });
    assert.equal(lockHolder(dir)?.pid, process.pid);
    send(card2, SELECT);
    assert.equal(swOf(card2, verify(USER_PIN)), 0x9000);
    card2.close();
  } finally {
    c.proc.kill('SIGKILL');
    cleanup();
  }
});

test('a reused PID (same PID, other start time), a dead PID or another boot is stale; another host or garbage is never taken over', () => {
  const { dir, cleanup } = tempDir();
  mkdirSync(dir, { recursive: true });
  try {
    const me = startTimeOf(process.pid);
    assert.ok(me !== undefined, '/proc/<pid>/stat readable here');
    const write = (o: object | string): void => writeFileSync(lockFile(dir), typeof o === 'string' ? o : JSON.stringify(o));
    const base = { host: hostname(), command: 'setls serve https', since: new Date(0).toISOString() };
    // our own PID with another start time: a process that died and whose PID we now have
    write({ ...base, pid: process.pid, start: String(Number(me) + 1) });
    let l = lockFolder(dir);
    assert.equal(l.holder.pid, process.pid);
    l.release();
    // a PID that does not exist (beyond pid_max)
    write({ ...base, pid: 4_194_304 + 7 });
    l = lockFolder(dir);
    l.release();
    // a lock of an earlier boot
    write({ ...base, pid: process.pid, start: me, boot: '00000000-0000-0000-0000-000000000000' });
    if (existsSync('/proc/sys/kernel/random/boot_id')) {
      l = lockFolder(dir);
      l.release();
    }
    // another host: refused, with what to do
    write({ ...base, pid: 1, host: 'elsewhere.example' });
    assert.throws(() => lockFolder(dir), (e: Error & { code?: string }) => e.code === 'ERR_CARD_LOCKED' && /host elsewhere\.example/.test(e.message) && /remove .*lock/.test(e.message));
    // not a setls lock
    write('garbage');
    assert.throws(() => lockFolder(dir), (e: Error & { code?: string }) => e.code === 'ERR_CARD_LOCKED' && /not a setls lock/.test(e.message));
    unlinkSync(lockFile(dir));
    // a live holder of this process (PID and start time match)
    write({ ...base, pid: process.pid, start: me });
    assert.throws(() => lockFolder(dir), { code: 'ERR_CARD_LOCKED' });
  } finally {
    cleanup();
  }
});

test('processes racing for a stale lock: exactly one gets it, every other one is told who has it', async () => {
  const { dir, cleanup } = tempDir();
  mkdirSync(dir, { recursive: true });
  try {
    for (let round = 0; round < 3; round++) {
      // a stale lock (dead PID) for the racers to take over; in round 0, none (a race to create)
      if (round > 0) writeFileSync(lockFile(dir), JSON.stringify({ pid: 4_194_304 + round, host: hostname(), command: 'dead', since: new Date(0).toISOString() }));
      const go = join(dir, `..`, `go-${round}`);
      const racers = Array.from({ length: 5 }, () => child(dir, 'race', go));
      try {
        await Promise.all(racers.map((r) => r.line(/^ready$/)));
        writeFileSync(go, '');
        const results = await Promise.all(racers.map((r) => r.line(/^(got|locked) /)));
        const winners = results.filter((l) => l.startsWith('got '));
        assert.equal(winners.length, 1, results.join('\n'));
        const winner = Number(winners[0]!.split(' ')[1]);
        for (const l of results.filter((x) => x.startsWith('locked '))) {
          assert.match(l, /ERR_CARD_LOCKED/);
          assert.ok(l.includes(`process ${winner}`) || /taking over/.test(l), l);
        }
        assert.equal(lockHolder(dir)?.pid, winner);
      } finally {
        for (const r of racers) r.proc.stdin.end();
        await Promise.all(racers.map((r) => r.exited));
      }
      assert.equal(existsSync(lockFile(dir)), false, 'the winner released it');
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('lock')), [], 'no temp files left');
    }
  } finally {
    cleanup();
  }
});

test('the lock goes when its process exits without closing, and on SIGTERM with no handler of its own', async () => {
  const { dir, cleanup } = tempDir();
  mkdirSync(dir, { recursive: true });
  try {
    const a = child(dir, 'exit');
    await a.line(/^got /);
    assert.equal((await a.exited).code, 0);
    assert.equal(existsSync(lockFile(dir)), false);
    const b = child(dir, 'wait-term');
    await b.line(/^got /);
    assert.equal(lockHolder(dir)?.pid, b.proc.pid);
    b.proc.kill('SIGTERM');
    assert.equal((await b.exited).signal, 'SIGTERM', 'the default action of the signal still runs');
    assert.equal(existsSync(lockFile(dir)), false);
  } finally {
    cleanup();
  }
});

test('no lost update: a card whose lock was removed by hand refuses to write; a store never overwrites a state written since it read it', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    // someone removes the lock by hand and another opener comes in, changes the state and leaves
    unlinkSync(lockFile(dir));
    const other = EmulatedCard.open({ dir, masterKey });
    send(other, SELECT);
    assert.equal(swOf(other, verify('9999')), 0x63c2);
    other.close();
    // the first card's next write (a PIN check) is refused: it would resurrect its older copy
    assert.equal(swOf(card, verify(USER_PIN)), 0x6f00);
    assert.equal(card.lastError?.code, 'ERR_CARD_LOCKED');
    card.close();
    // a lock-free store (tests, tools) that read the state, then another writer: no overwrite
    const reader = new SealedStore(dir, masterKey);
    const plain = reader.read();
    const writer = EmulatedCard.open({ dir, masterKey });
    send(writer, SELECT);
    assert.equal(swOf(writer, verify('8888')), 0x63c1);
    writer.close();
    assert.throws(() => reader.write(plain), { code: 'ERR_CARD_STATE_CHANGED' });
    reader.close();
    const last = EmulatedCard.open({ dir, masterKey });
    send(last, SELECT);
    assert.equal(swOf(last, verify(USER_PIN)), 0x9000);
    last.close();
  } finally {
    cleanup();
  }
});
