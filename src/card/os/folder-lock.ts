/**
 * The card folder's owner: an exclusive lock file `<dir>/lock`, so one card folder is one card
 * (one process holds its state; docs/architecture.md "One owner of the card folder").
 *
 *   <dir>/lock = {"pid":1234,"start":"66315","boot":"e96f…","host":"name","command":"setls serve https …","since":"2025-…Z"}
 *
 * Node has no flock(2), so the lock is a file that only ever appears whole:
 *  - take: the JSON is written to a private temp file, then `link(temp, lock)`: atomic, and it fails
 *    with EEXIST when a lock exists (O_EXCL semantics, also on NFS).
 *  - a lock whose holder is gone is stale: the PID does not exist, or it exists but is another
 *    process (its start time in /proc/<pid>/stat, or the boot id, differs: PID reuse). A lock from
 *    another host, or one that cannot be read, is never judged stale (the message says what to do).
 *  - take-over of a stale lock happens under a second lock, `<dir>/lock.takeover` (taken the same way):
 *    the taker re-reads `lock`, and only if it is still stale (or gone) replaces it with a rename
 *    of its own temp file (atomic replace), then re-reads it to confirm. A fresh lock can only appear
 *    by link() on a missing file, and a stale one is only replaced under `lock.takeover`, so two
 *    takers can never both believe they hold the card. A take-over lock left by a taker that died
 *    in the middle (a few system calls) is itself cleared when its holder is dead.
 *  - released by `release()` (the card's close), and on process exit; SIGINT/SIGTERM with no other
 *    handler release every lock, then the signal's default action runs.
 *
 * Errors: ERR_CARD_LOCKED names the holder (PID, command, since). imports bytes/ and node built-ins.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { SetlsError } from '../../bytes/index.js';

export const LOCK_FILE = 'lock';
const TAKEOVER_FILE = 'lock.takeover';
/** A lock file larger than this is not a setls lock. */
const MAX_LOCK_BYTES = 4096;

/** What a lock file holds. */
export interface LockHolder {
  readonly pid: number;
  /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22), when known. */
  readonly start?: string;
  /** /proc/sys/kernel/random/boot_id, when known. */
  readonly boot?: string;
  readonly host: string;
  /** The command line of the holder (never holds a secret: setls takes none on argv). */
  readonly command: string;
  /** ISO time the lock was taken. */
  readonly since: string;
}

/** A held lock. */
export interface FolderLock {
  readonly dir: string;
  readonly holder: LockHolder;
  /** Throws ERR_CARD_LOCKED when `<dir>/lock` is no longer this lock (removed or replaced by hand). */
  assertHeld(): void;
  /** Removes the lock file (only if it is still this lock). Idempotent. */
  release(): void;
}

export interface LockOptions {
  /** What the lock says the holder runs. Default: this process's command line. */
  readonly command?: string;
}

/** Locks held by this process, released at exit and on SIGINT/SIGTERM. */
const held = new Set<HeldLock>();

/**
 * Takes the exclusive lock of the card folder `dir` (which must exist). Throws ERR_CARD_LOCKED when
 * another live process (or this one, through another card object) holds it.
 */
export function lockFolder(dir: string, opts: LockOptions = {}): FolderLock {
  const me = selfHolder(opts.command);
  const body = encodeHolder(me);
  const lockPath = join(dir, LOCK_FILE);
  removeDeadTemps(dir);
  for (let attempt = 0; attempt < 4; attempt++) {
    const tmp = writeTemp(dir, body);
    try {
      try {
        fs.linkSync(tmp, lockPath);
        return adopt(dir, me, body);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw lockIoError(dir, e);
      }
      const current = readLock(lockPath);
      if (current === undefined) continue; // released meanwhile: try the link again
      const judged = judge(current);
      if (judged.alive) throw lockedError(dir, judged.holder, current.raw);
      if (takeOver(dir, current.raw, tmp)) return adopt(dir, me, body);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  throw new SetlsError('ERR_CARD_LOCKED', `could not take the lock of the card folder ${dir}: it kept changing hands`);
}

/** Who holds `dir`'s lock now (undefined: nobody, or a stale lock). For messages and tests. */
export function lockHolder(dir: string): LockHolder | undefined {
  const current = readLock(join(dir, LOCK_FILE));
  if (!current) return undefined;
  const j = judge(current);
  return j.alive ? j.holder : undefined;
}

class HeldLock implements FolderLock {
  private released = false;
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
    private readonly body: Buffer,
  ) {}

  private isOurs(): boolean {
    const cur = readLock(join(this.dir, LOCK_FILE));
    return cur !== undefined && cur.raw.equals(this.body);
  }

  assertHeld(): void {
    if (this.released) throw new SetlsError('ERR_CARD_LOCKED', `the lock of the card folder ${this.dir} was released`);
    if (!this.isOurs()) {
      const other = lockHolder(this.dir);
      throw new SetlsError(
        'ERR_CARD_LOCKED',
        `this process (pid ${process.pid}) no longer holds the lock of the card folder ${this.dir}` +
          (other ? `: process ${other.pid} (${other.command}) does` : ' (the lock file was removed)') +
          '; refusing to write the card state',
      );
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    held.delete(this);
    if (held.size === 0) uninstallExitHooks();
    try {
      // Only our own lock is removed: nobody can replace a live lock, so the check-then-unlink is safe.
      if (this.isOurs()) fs.unlinkSync(join(this.dir, LOCK_FILE));
    } catch {
      // the folder is gone (a test removed it): nothing to release
    }
  }
}

function adopt(dir: string, me: LockHolder, body: Buffer): FolderLock {
  const lock = new HeldLock(dir, me, body);
  lock.assertHeld(); // re-read: the lock file is ours
  held.add(lock);
  installExitHooks();
  return lock;
}

/**
 * Replaces the stale lock whose bytes are `stale` by `tmp` (our lock), under `lock.takeover`.
 * True when we now hold the lock; throws ERR_CARD_LOCKED when a live process got it first.
 */
function takeOver(dir: string, stale: Buffer, tmp: string): boolean {
  const lockPath = join(dir, LOCK_FILE);
  const mutex = join(dir, TAKEOVER_FILE);
  const mine = writeTemp(dir, encodeHolder(selfHolder('take-over')));
  try {
    if (!takeMutex(dir, mutex, mine)) {
      throw new SetlsError('ERR_CARD_LOCKED', `another process is taking over the stale lock of the card folder ${dir} right now`);
    }
    const mineBody = fs.readFileSync(mine);
    try {
      const now = readLock(lockPath);
      if (now === undefined) {
        // Gone meanwhile: a fresh lock may race us, so only link() (fails if it exists) is safe here.
        try {
          fs.linkSync(tmp, lockPath);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw lockIoError(dir, e);
        }
      } else {
        if (!now.raw.equals(stale)) {
          const j = judge(now);
          if (j.alive) throw lockedError(dir, j.holder, now.raw);
        }
        // Still stale: nobody but a taker (and we hold lock.takeover) can replace it, and a fresh
        // lock cannot appear while it exists. Our lock goes in with one rename (atomic replace).
        const repl = writeTemp(dir, fs.readFileSync(tmp));
        fs.renameSync(repl, lockPath);
      }
      const after = readLock(lockPath);
      return after !== undefined && after.raw.equals(fs.readFileSync(tmp));
    } finally {
      const cur = readRaw(mutex);
      if (cur !== undefined && cur.equals(mineBody)) fs.rmSync(mutex, { force: true });
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

/** Takes `lock.takeover` (link of `mine`); clears one left by a dead taker. False when a live taker has it. */
function takeMutex(dir: string, mutex: string, mine: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.linkSync(mine, mutex);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw lockIoError(dir, e);
    }
    const cur = readLock(mutex);
    if (cur === undefined) continue;
    if (judge(cur).alive) return false;
    // A taker died holding it: move it aside, and check that what we moved is the dead one.
    const side = join(dir, `lock.takeover.${process.pid}.${randomBytes(6).toString('hex')}.stale`);
    try {
      fs.renameSync(mutex, side);
    } catch {
      continue; // someone else cleared it
    }
    const moved = readRaw(side);
    if (moved !== undefined && !moved.equals(cur.raw)) {
      // We moved a live taker's fresh mutex: put it back (link fails only if a third taker raced in).
      try {
        fs.linkSync(side, mutex);
      } catch {
        /* the third taker holds it now */
      }
      fs.rmSync(side, { force: true });
      return false;
    }
    fs.rmSync(side, { force: true });
  }
  return false;
}

interface ReadLock {
  readonly raw: Buffer;
  readonly holder: LockHolder | undefined;
}

function readRaw(path: string): Buffer | undefined {
  try {
    const st = fs.statSync(path);
    if (st.size > MAX_LOCK_BYTES) return Buffer.from('oversize');
    return fs.readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function readLock(path: string): ReadLock | undefined {
  const raw = readRaw(path);
  if (raw === undefined) return undefined;
  return { raw, holder: decodeHolder(raw) };
}

/** A holder is alive unless we can prove it is gone (same host, and dead PID, PID reuse or a reboot). */
function judge(l: ReadLock): { alive: boolean; holder: LockHolder | undefined } {
  const h = l.holder;
  if (!h) return { alive: true, holder: undefined }; // unreadable: never taken over
  if (h.host !== hostname()) return { alive: true, holder: h };
  const boot = bootId();
  if (h.boot !== undefined && boot !== undefined && h.boot !== boot) return { alive: false, holder: h };
  if (!pidExists(h.pid)) return { alive: false, holder: h };
  if (h.start !== undefined) {
    const start = startTimeOf(h.pid);
    if (start !== undefined && start !== h.start) return { alive: false, holder: h }; // the PID was reused
  }
  return { alive: true, holder: h };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, another user's
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined without /proc. */
export function startTimeOf(pid: number): string | undefined {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields resume after the last ')'.
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const v = fields[19]; // field 22 overall: 3 is the first after ')'
  return v !== undefined && /^\d+$/.test(v) ? v : undefined;
}

let bootCache: string | null | undefined;
function bootId(): string | undefined {
  if (bootCache === undefined) {
    try {
      bootCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || null;
    } catch {
      bootCache = null;
    }
  }
  return bootCache ?? undefined;
}

function selfHolder(command?: string): LockHolder {
  const start = startTimeOf(process.pid);
  const boot = bootId();
  return {
    pid: process.pid,
    ...(start !== undefined ? { start } : {}),
    ...(boot !== undefined ? { boot } : {}),
    host: hostname(),
    command: (command ?? commandLine()).slice(0, 512),
    since: new Date().toISOString(),
  };
}

/** `setls serve https --card-dir …` for the CLI binary, else the script and its arguments. */
function commandLine(): string {
  const script = process.argv[1] ? basename(process.argv[1]).replace(/\.(mjs|js|ts)$/, '') : basename(process.execPath);
  return [script, ...process.argv.slice(2)].join(' ');
}

function encodeHolder(h: LockHolder): Buffer {
  return Buffer.from(JSON.stringify(h) + '\n', 'utf8');
}

function decodeHolder(raw: Buffer): LockHolder | undefined {
  try {
    const o = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    if (!Number.isInteger(o.pid) || (o.pid as number) <= 0) return undefined;
    if (typeof o.host !== 'string' || typeof o.command !== 'string' || typeof o.since !== 'string') return undefined;
    if (o.start !== undefined && typeof o.start !== 'string') return undefined;
    if (o.boot !== undefined && typeof o.boot !== 'string') return undefined;
    return o as unknown as LockHolder;
  } catch {
    return undefined;
  }
}

/** Writes `body` to a fresh private temp file in `dir` (the name carries our PID for clean-up). */
function writeTemp(dir: string, body: Buffer): string {
  const tmp = join(dir, `lock.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, body, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw lockIoError(dir, e);
  }
  return tmp;
}

/** Temp files of processes that died between writing and removing them. */
function removeDeadTemps(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw lockIoError(dir, e);
  }
  for (const n of names) {
    const m = /^lock\.(?:takeover\.)?(\d+)\.[0-9a-f]+\.(?:tmp|stale)$/.exec(n);
    if (m && Number(m[1]) !== process.pid && !pidExists(Number(m[1]))) fs.rmSync(join(dir, n), { force: true });
  }
}

function lockedError(dir: string, h: LockHolder | undefined, raw: Buffer): SetlsError {
  const lockPath = join(dir, LOCK_FILE);
  if (!h) {
    return new SetlsError(
      'ERR_CARD_LOCKED',
      `the card folder ${dir} is locked by ${lockPath}, which is not a setls lock (${raw.length} bytes); remove it if no process uses the card`,
    );
  }
  const who = h.pid === process.pid && h.host === hostname() ? `this process (pid ${h.pid})` : `process ${h.pid}`;
  const where = h.host !== hostname() ? ` on host ${h.host} (remove ${lockPath} if that host no longer uses the folder)` : '';
  return new SetlsError('ERR_CARD_LOCKED', `the card in ${dir} is in use by ${who}${where}: ${h.command} (since ${h.since})`);
}

function lockIoError(dir: string, e: unknown): SetlsError {
  return new SetlsError('ERR_CARD_DIR', `cannot lock the card folder ${dir}: ${(e as Error).message}`, { cause: e });
}

// ---------------------------------------------------------------- release at exit

let hooked = false;
const onExit = (): void => {
  for (const l of [...held]) l.release();
};
const onSignal = (signal: NodeJS.Signals): void => {
  // Other handlers (a server's graceful stop) own the shutdown; they close the card.
  if (process.listenerCount(signal) > 1) return;
  onExit();
  uninstallExitHooks();
  process.kill(process.pid, signal); // the default action, now that nobody listens
};

function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function uninstallExitHooks(): void {
  if (!hooked) return;
  hooked = false;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}
