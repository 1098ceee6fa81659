/**
 * Where the CLI keeps a card's host-side files, next to the card folder DIR:
 *   DIR/            the card's sealed state (written by the card itself)
 *   DIR.key         the card master key (32 bytes, hex), mode 0600 — outside the state folder
 *   DIR.pin         the user PIN (what `serve` presents), mode 0600
 *   DIR.admin.json  operator PIN and PUK, mode 0600
 *   DIR/../ca/      the local CA (ca.crt is what clients trust)
 */
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SetlsError, fromHex, toHex } from '../bytes/index.js';
import { LOCK_FILE } from '../card/os/folder-lock.js';
import { ADMIN_SOCKET_FILE } from '../transport/admin-socket.js';

export interface CardPaths {
  readonly dir: string;
  readonly keyFile: string;
  readonly pinFile: string;
  readonly adminFile: string;
  readonly caDir: string;
}

export function cardPaths(cardDir: string, opts: { cardKey?: string; pinFile?: string; caDir?: string } = {}): CardPaths {
  const dir = resolve(cardDir);
  return {
    dir,
    keyFile: resolve(opts.cardKey ?? `${dir}.key`),
    pinFile: resolve(opts.pinFile ?? `${dir}.pin`),
    adminFile: `${dir}.admin.json`,
    caDir: resolve(opts.caDir ?? join(dirname(dir), 'ca')),
  };
}

/**
 * Copies a card (state folder, master key file, PIN file) to `dst` unless `dst` exists already:
 * a second card with the same identity (pools, benches). The source's lock file, its temp files
 * and its admin socket are not copied: they belong to whoever serves the source card.
 */
export function cloneCardFiles(src: CardPaths, dst: CardPaths): void {
  if (existsSync(dst.dir)) return;
  cpSync(src.dir, dst.dir, { recursive: true, filter: (from) => !isOwnerFile(from) });
  cpSync(src.keyFile, dst.keyFile);
  cpSync(src.pinFile, dst.pinFile);
}

function isOwnerFile(path: string): boolean {
  const name = path.split('/').pop() ?? '';
  return name === ADMIN_SOCKET_FILE || name === LOCK_FILE || name.startsWith(`${LOCK_FILE}.`);
}

/** A random string of `n` decimal digits (uniform, from the OS CSPRNG). */
export function randomDigits(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String(randomInt(10));
  return s;
}

export function writeSecretFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

/** Reads a secret file, refusing one that others can read (like ssh does). */
export function readSecretFile(path: string, what: string): string {
  if (!existsSync(path)) throw new SetlsError('ERR_CLI_SECRET_MISSING', `${what} file ${path} does not exist (run 'setls card init' first?)`);
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new SetlsError('ERR_CLI_SECRET_MODE', `${what} file ${path} has mode ${mode.toString(8)}; it must not be readable by others (chmod 600)`);
  }
  return readFileSync(path, 'utf8').trim();
}

export function newMasterKey(path: string): Uint8Array {
  const key = new Uint8Array(randomBytes(32));
  writeSecretFile(path, toHex(key) + '\n');
  return key;
}

export function readMasterKey(path: string): Uint8Array {
  const text = readSecretFile(path, 'card master key');
  const key = fromHex(text);
  if (key.length !== 32) throw new SetlsError('ERR_CLI_SECRET_FORMAT', `card master key ${path} must hold 32 bytes in hex`);
  return key;
}

/** The user PIN: SETLS_PIN wins, else the PIN file. Never taken from argv. */
export function readPin(pinFile: string): string {
  const env = process.env.SETLS_PIN;
  if (env !== undefined && env !== '') return env;
  return readSecretFile(pinFile, 'PIN');
}
