/**
 * Where the user PIN of a card comes from, one rule for the library (`createServer`) and the CLI
 * (`setls serve`, `setls demo`). Never from the command line.
 *
 *   1. `pin` given (the library: from your own secret store)            → it.
 *   2. `pinFile` given explicitly (`--pin-file`, `{ pinFile }`)          → that file; when SETLS_PIN
 *      is also set and differs, the explicit file wins and a warning says so.
 *   3. otherwise `<cardDir>.pin` (written by `setls card init`) and/or SETLS_PIN: either alone is
 *      used; both and equal is fine; both and different is ERR_API_PIN_CONFLICT (which one is meant
 *      cannot be guessed: a stale variable in a shell would burn PIN tries).
 *   4. none of these: ERR_API_PIN_MISSING naming what was looked for.
 * imports bytes/ and cli/card-files.ts (secret files: mode 0600 checked).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { SetlsError } from '../bytes/index.js';
import { cardPaths, readSecretFile } from '../cli/card-files.js';

export interface PinSource {
  /** The user PIN itself (4–8 digits). */
  readonly pin?: string;
  /** A file holding the PIN (mode 0600). Named explicitly, it wins over SETLS_PIN. */
  readonly pinFile?: string;
  /** The card folder: its default PIN file is `<cardDir>.pin`. */
  readonly cardDir?: string;
}

export interface ResolvedPin {
  readonly pin: string;
  /** Where it came from: 'option', 'SETLS_PIN' or the file's path. */
  readonly from: string;
}

export interface ResolvePinOptions {
  /** The environment to read SETLS_PIN from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Told when an explicit PIN file overrides a different SETLS_PIN. */
  readonly warn?: (message: string) => void;
  /** How the caller names the explicit file in messages (default '--pin-file / pinFile'). */
  readonly pinFileName?: string;
}

/** The user PIN per the rules above; throws ERR_API_PIN_MISSING / ERR_API_PIN_CONFLICT (or a secret-file error). */
export function resolvePin(src: PinSource, opts: ResolvePinOptions = {}): ResolvedPin {
  const envPin = (opts.env ?? process.env).SETLS_PIN;
  const env = envPin !== undefined && envPin !== '' ? envPin : undefined;
  const flag = opts.pinFileName ?? '--pin-file / pinFile';
  if (src.pin !== undefined) {
    if (typeof src.pin !== 'string' || src.pin === '') throw new TypeError('pin must be a non-empty string');
    return { pin: src.pin, from: 'option' };
  }
  if (src.pinFile !== undefined) {
    const file = resolve(src.pinFile);
    const pin = readSecretFile(file, 'PIN');
    if (env !== undefined && env !== pin) {
      opts.warn?.(`SETLS_PIN differs from the PIN in ${file}; using the file (${flag} was given explicitly)`);
    }
    return { pin, from: file };
  }
  const file = src.cardDir !== undefined ? cardPaths(src.cardDir).pinFile : undefined;
  const fromFile = file !== undefined && existsSync(file) ? readSecretFile(file, 'PIN') : undefined;
  if (fromFile !== undefined && env !== undefined) {
    if (fromFile !== env) {
      throw new SetlsError(
        'ERR_API_PIN_CONFLICT',
        `SETLS_PIN and ${file} hold different PINs; a wrong PIN costs a try, so neither is guessed: ` +
          `unset SETLS_PIN, or name the PIN file with ${flag} (an explicit file wins)`,
      );
    }
    return { pin: fromFile, from: file! };
  }
  if (fromFile !== undefined) return { pin: fromFile, from: file! };
  if (env !== undefined) return { pin: env, from: 'SETLS_PIN' };
  throw new SetlsError(
    'ERR_API_PIN_MISSING',
    file !== undefined
      ? `no user PIN for the card in ${cardPaths(src.cardDir!).dir}: ${file} does not exist and SETLS_PIN is not set (${flag}, or the pin option)`
      : `no user PIN: SETLS_PIN is not set and no PIN file was named (${flag}, or the pin option)`,
  );
}
