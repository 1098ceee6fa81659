/**
 * The sealed persistent store: one document sealed with AES-256-GCM under the card master key,
 * written atomically (tmp file, fsync, rename, fsync of the folder), so a crash at any point
 * leaves the old or the new state, never a broken one.
 *
 *   state.sealed = "SETLSCS1" ‖ nonce(12) ‖ ciphertext ‖ tag(16)      AAD = "setls-card-state/v1"
 *
 * One owner: `SealedStore.open` takes the folder's exclusive lock (folder-lock.ts) and holds it until
 * `close()`; every way to a card (EmulatedCard.create / open) goes through it. A write checks that
 * the lock is still ours and that `state.sealed` is still the file this store last read or wrote
 * (inode, size, times): a state written by anyone else since is never overwritten by our older copy
 * (ERR_CARD_STATE_CHANGED). A store made with `new` (tests reading a state) holds no lock; its
 * `write` takes the lock for the duration of the write.
 *
 * Secrets: `masterKey` (a private copy, wiped by `close()`) and every plaintext passed to `write`
 * or returned by `read` (the caller wipes those). imports bytes/, card/os/folder-lock and node built-ins.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { SetlsError, concat, equalBytes, freshCopy, wipe } from '../../bytes/index.js';
import { lockFolder, type FolderLock, type LockOptions } from './folder-lock.js';

export const STATE_FILE = 'state.sealed';
export const TMP_FILE = 'state.sealed.tmp';
const MAGIC = new TextEncoder().encode('SETLSCS1');
const AAD = new TextEncoder().encode('setls-card-state/v1');
const NONCE = 12;
const TAG = 16;
/** A sealed state larger than this is refused on read (bounded memory). */
const MAX_SEALED = 4 << 20;

/** The steps of an atomic write; a test hook may throw at any of them to simulate a crash. */
export type WriteStep = 'beforeTmpWrite' | 'afterTmpWrite' | 'afterRename';

export interface StoreHooks {
  /** Called at each step of every write; throwing aborts the write there (a simulated power cut). */
  onWriteStep?: (step: WriteStep) => void;
}

export interface StoreOpenOptions extends LockOptions {
  /** Create the folder (mode 0700) when it does not exist (a new card). */
  readonly create?: boolean;
}

/** What identifies one version of `state.sealed` on disk (a rename makes a new inode). */
interface FileStamp {
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

export class SealedStore {
  private readonly key: Uint8Array;
  /** The folder lock, held from `open` to `close` (undefined for a store made with `new`). */
  private lock: FolderLock | undefined;
  /** The state file as last read or written by this store (undefined: not yet, or no file). */
  private stamp: FileStamp | undefined;

  /**
   * Opens the card folder `dir` for its one owner: takes the folder lock (ERR_CARD_LOCKED when
   * another process, or another card object of this process, holds it) and keeps it until `close()`.
   */
  static open(dir: string, masterKey: Uint8Array, hooks: StoreHooks = {}, opts: StoreOpenOptions = {}): SealedStore {
    const store = new SealedStore(dir, masterKey, hooks);
    try {
      if (opts.create) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      else if (!fs.existsSync(dir)) throw new SetlsError('ERR_CARD_STATE', `no card state in ${dir}`);
      store.lock = lockFolder(dir, opts.command !== undefined ? { command: opts.command } : {});
    } catch (e) {
      store.close();
      throw e;
    }
    return store;
  }

  constructor(
    readonly dir: string,
    masterKey: Uint8Array,
    private readonly hooks: StoreHooks = {},
  ) {
    if (!(masterKey instanceof Uint8Array) || masterKey.length !== 32) {
      throw new SetlsError('ERR_CARD_MASTER_KEY', 'the card master key must be 32 bytes');
    }
    if (typeof dir !== 'string' || dir.length === 0) throw new SetlsError('ERR_CARD_DIR', 'the card folder must be a non-empty path');
    this.key = freshCopy(masterKey);
  }

  get statePath(): string {
    return join(this.dir, STATE_FILE);
  }

  exists(): boolean {
    return fs.existsSync(this.statePath);
  }

  /** Removes a tmp file left by an interrupted write (it is never the committed state). */
  removeLeftoverTmp(): void {
    fs.rmSync(join(this.dir, TMP_FILE), { force: true });
  }

  /** Reads and opens the sealed state; throws ERR_CARD_STATE on a missing, corrupt or wrongly keyed file. */
  read(): Uint8Array {
    let sealed: Buffer;
    try {
      const st = fs.statSync(this.statePath);
      if (st.size > MAX_SEALED) throw new Error(`state file of ${st.size} bytes is too large`);
      sealed = fs.readFileSync(this.statePath);
      this.stamp = stampOf(this.statePath);
    } catch (e) {
      throw new SetlsError('ERR_CARD_STATE', `cannot read the card state in ${this.dir}: ${(e as Error).message}`, { cause: e });
    }
    if (sealed.length < MAGIC.length + NONCE + TAG || !equalBytes(sealed.subarray(0, MAGIC.length), MAGIC)) {
      throw new SetlsError('ERR_CARD_STATE', `${this.statePath} is not a sealed setls card state`);
    }
    const nonce = sealed.subarray(MAGIC.length, MAGIC.length + NONCE);
    const ct = sealed.subarray(MAGIC.length + NONCE, sealed.length - TAG);
    const tag = sealed.subarray(sealed.length - TAG);
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, nonce);
      d.setAAD(AAD);
      d.setAuthTag(tag);
      const a = d.update(ct);
      const b = d.final();
      const out = concat(a, b);
      wipe(a, b);
      return out;
    } catch (e) {
      throw new SetlsError('ERR_CARD_STATE', `cannot open ${this.statePath}: wrong master key or corrupt state`, { cause: e });
    }
  }

  /** Seals `plain` and replaces the state atomically. Throws (ERR_CARD_STORE_WRITE or the hook's error) on failure. */
  write(plain: Uint8Array): void {
    if (this.lock) {
      this.lock.assertHeld();
      this.writeLocked(plain);
      return;
    }
    const lock = lockFolder(this.dir);
    try {
      this.writeLocked(plain);
    } finally {
      lock.release();
    }
  }

  private writeLocked(plain: Uint8Array): void {
    this.assertUnchanged();
    const hook = this.hooks.onWriteStep;
    const nonce = randomBytes(NONCE); // always the system RNG: a nonce must never repeat under one key
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    c.setAAD(AAD);
    const sealed = concat(MAGIC, nonce, c.update(plain), c.final(), c.getAuthTag());
    const tmp = join(this.dir, TMP_FILE);
    hook?.('beforeTmpWrite');
    try {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, sealed);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      throw new SetlsError('ERR_CARD_STORE_WRITE', `cannot write ${tmp}: ${(e as Error).message}`, { cause: e });
    }
    hook?.('afterTmpWrite');
    try {
      fs.renameSync(tmp, this.statePath);
    } catch (e) {
      throw new SetlsError('ERR_CARD_STORE_WRITE', `cannot rename ${tmp}: ${(e as Error).message}`, { cause: e });
    }
    this.stamp = stampOf(this.statePath);
    hook?.('afterRename');
    fsyncDir(this.dir);
  }

  /** Refuses to replace a state file that someone else wrote since this store last read or wrote it. */
  private assertUnchanged(): void {
    const now = stampOf(this.statePath);
    const was = this.stamp;
    if (was === undefined) {
      if (now === undefined) return; // a new card: nothing to overwrite
      throw new SetlsError('ERR_CARD_STATE_CHANGED', `${this.statePath} appeared after this card was opened; refusing to overwrite it`);
    }
    if (now === undefined || now.ino !== was.ino || now.size !== was.size || now.mtimeNs !== was.mtimeNs || now.ctimeNs !== was.ctimeNs) {
      throw new SetlsError(
        'ERR_CARD_STATE_CHANGED',
        `${this.statePath} was changed by someone else since this process read it; refusing to overwrite it with an older copy (reopen the card)`,
      );
    }
  }

  /** Wipes the private copy of the master key and releases the folder lock; the store is unusable afterwards. */
  close(): void {
    wipe(this.key);
    this.lock?.release();
    this.lock = undefined;
  }
}

function stampOf(path: string): FileStamp | undefined {
  try {
    const st = fs.statSync(path, { bigint: true });
    return { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SetlsError('ERR_CARD_STATE', `cannot stat ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    // Some platforms cannot fsync a folder (EISDIR/EPERM on Windows); the rename is still atomic.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') {
      throw new SetlsError('ERR_CARD_STORE_WRITE', `cannot fsync ${dir}: ${(e as Error).message}`, { cause: e });
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
