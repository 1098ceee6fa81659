/**
 * operator/pki/issuer-worker: the body of one IssuerPool worker thread. Receives the CA template
 * material once ({ certDer, key: KeyObject } as workerData, the key cloned by the runtime, never
 * exported), then answers tasks one message at a time: `csr` → pki/csr-check's result, `issue` →
 * pki/leaf-template's certificate. A refusal travels back as { code, message }; anything else as
 * ERR_OP_INTERNAL. imports pki/csr-check, pki/leaf-template, errors.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import { checkCsrDer } from './csr-check.js';
import { LeafTemplate, UnsupportedLeaf, type LeafFields } from './leaf-template.js';

export type WorkerTask = { readonly id: number; readonly op: 'csr'; readonly der: Uint8Array } | { readonly id: number; readonly op: 'issue'; readonly req: LeafFields };
export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly code: string; readonly message: string; readonly unsupported?: boolean };

const { certDer, key } = workerData as { certDer: Uint8Array; key: KeyObject };
const template = new LeafTemplate(certDer, key);
const port = parentPort!;

port.on('message', (t: WorkerTask) => {
  try {
    const value = t.op === 'csr' ? checkCsrDer(t.der) : template.issue(t.req);
    port.postMessage({ id: t.id, ok: true, value } satisfies WorkerReply);
  } catch (e) {
    const code = e instanceof OpError ? e.code : OpErrorCode.internal;
    port.postMessage({ id: t.id, ok: false, code, message: (e as Error).message, unsupported: e instanceof UnsupportedLeaf } satisfies WorkerReply);
  }
});
