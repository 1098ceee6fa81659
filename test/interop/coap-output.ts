// What libcoap's coap-client printed, read the same way by every CoAP interop test.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { blobBytes } from '../../src/servers/coap/index.js';

/** sha256 (hex) of the demo device's 64 KiB /blob, for block-wise transfers. */
export const BLOB_SHA256 = createHash('sha256').update(blobBytes()).digest('hex');

/**
 * What a libcoap client printed as data: its log lines below LOG_CRIT (e.g. "Nov 28 08:27:41.635 WARN …",
 * a retransmission on a loaded machine) go to stdout too, so they are taken out.
 */
export function dataOf(stdout: string): string {
  return stdout
    .split('\n')
    .filter((l) => !/^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(\.\d+)? (EMRG|ALRT|CRIT|ERR|WARN|NOTE|INFO|DEBG|CIPH) /.test(l))
    .join('\n');
}

/** The /power readings an observing client printed (one per line with -w): each must be a reading of the relay switched on. */
export function assertReadings(r: { stdout: string; stderr: string }): void {
  const values = dataOf(r.stdout).split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  assert.ok(values.length >= 3, `only ${values.length} notifications: ${r.stdout}\n${r.stderr}`);
  for (const v of values) {
    assert.match(v, /^\d+\.\d$/, `not a reading: ${JSON.stringify(v)}`);
    assert.ok(Number(v) > 1700 && Number(v) < 2000, `not a switched-on reading: ${v}`);
  }
}
