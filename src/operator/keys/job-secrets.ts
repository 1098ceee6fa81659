/**
 * operator/keys/job-secrets: a job's secret result (the new PIN of unblock-pin) sealed for the
 * store — AES-256-GCM under a key derived (HKDF-SHA256) from the admin master key file and the job
 * id — so a copy of operator.db alone reveals no PIN; only `GET /v1/jobs/{id}/secret` by the token
 * that created the job opens it. imports keys/master-keys, errors, node:crypto.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { wipe } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import { adminMasterPath, readMasterKeyFile } from './master-keys.js';

const INFO = Buffer.from('setls-operator-job-secret-v1', 'utf8');

function jobKey(keysDir: string, jobId: string): Buffer {
  const master = readMasterKeyFile(adminMasterPath(keysDir, 1));
  try {
    return Buffer.from(hkdfSync('sha256', master, Buffer.from(jobId, 'utf8'), INFO, 32));
  } finally {
    wipe(master);
  }
}

/** base64url(nonce 12 ‖ ciphertext ‖ tag 16) of `secret`, bound to the job id. */
export function sealJobSecret(keysDir: string, jobId: string, secret: string): string {
  const key = jobKey(keysDir, jobId);
  try {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(jobId, 'utf8'));
    const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
    return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64url');
  } finally {
    key.fill(0);
  }
}

export function openJobSecret(keysDir: string, jobId: string, sealed: string): string {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < 12 + 16) throw new OpError(OpErrorCode.secretUnavailable, 'the sealed secret is malformed');
  const key = jobKey(keysDir, jobId);
  try {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(jobId, 'utf8'));
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    throw new OpError(OpErrorCode.secretUnavailable, 'the sealed secret does not open with this operator\'s master key');
  } finally {
    key.fill(0);
  }
}
