/**
 * operator/keys/secret-files: writing and reading the operator's secret files — created with mode
 * 0600 (exclusively: an existing file is never overwritten), refused when readable by group or
 * others. imports errors.
 */
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync, constants } from 'node:fs';
import { OpError, OpErrorCode } from '../errors.js';

/** Creates `path` with mode 0600 holding `data`; fails if it exists. */
export function writeSecretFile(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600);
}

/** Reads a secret file, refusing one that group or others may read or write. */
export function readSecretFile(path: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new OpError(OpErrorCode.keyFile, `secret file ${path} is missing`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new OpError(OpErrorCode.keyFile, `secret file ${path} has mode ${(st.mode & 0o777).toString(8)}: it must be 0600 (chmod 600 ${path})`);
  }
  return readFileSync(path);
}
