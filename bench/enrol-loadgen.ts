/**
 * bench/enrol-loadgen: the enrolment bench's load generator (what each card does when it enrols),
 * in a worker thread of the bench child process (bench/scale.ts, childEnrol) — so it does not share
 * the operator's event loop, while process.cpuUsage() of that process still counts its CPU. imports
 * node:crypto, node:worker_threads, pki/attestation (the statement's encoding), pki/der, pki/p256-key.
 *
 * Per enrolment the card makes a fresh P-256 key pair and its CSR (neither depends on the nonce: made
 * ahead, at most `ahead` ready at a time, from the moment the main thread opens the measured window
 * — what was made before it is thrown away, so every CSR the window uses was paid for inside it),
 * then, given the operator's nonce, the attestation statement over (UID, slot, SHA-256 of the key,
 * nonce, counter) signed by the card's attestation key: that signature stays live, per request.
 *
 * Messages: in { kind: 'window' } | { kind: 'sign', reqs: [{ id, card, nonce }…] }; out [{ id, csrDer,
 * statement, signature } | { id, error }…]. Requests made in one turn of the operator's event loop go
 * in one message, their answers in one message back (a postMessage costs the sender a wake-up of the
 * other thread: one per enrolment was ~0.2 ms of the operator's thread in the profile). The
 * main-thread side is `LoadGenerator`.
 */
import { createHash, createPrivateKey, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { SETLS_ATTESTATION_V1 } from '../src/operator/pki/attestation.js';
import { derWrap } from '../src/operator/pki/der.js';
import { P256_SPKI_PREFIX } from '../src/operator/pki/p256-key.js';
import { generatedPublicJwk, JWK_PUBLIC } from '../src/tls/crypto.js';

export interface LoadGenCard {
  /** UID (hex). */
  readonly uid: string;
  /** The card's attestation private key, PKCS#8 DER (base64). */
  readonly key: string;
}

interface SignRequest {
  readonly id: number;
  readonly card: number;
  readonly nonce: Uint8Array;
}
type InMessage = { readonly kind: 'window' } | { readonly kind: 'sign'; readonly reqs: readonly SignRequest[] };
type OutMessage = { readonly id: number; readonly csrDer: Uint8Array; readonly statement: Uint8Array; readonly signature: Uint8Array } | { readonly id: number; readonly error: string };

export interface CardAnswer {
  readonly csrDer: Uint8Array;
  readonly statement: Uint8Array;
  readonly signature: Uint8Array;
}

const ALG_ECDSA_SHA256 = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02);
const SUBJECT_CN_CARD = derWrap(0x30, [derWrap(0x31, [derWrap(0x30, [Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03), derWrap(0x0c, [Buffer.from('card')])])])]);

/** A fresh P-256 key pair's CSR (CN=card), and the SHA-256 of its SubjectPublicKeyInfo. */
export function freshCsr(): { readonly csrDer: Uint8Array; readonly spkiSha256: Uint8Array } {
  // the public key as a JWK from the generation itself (a later JWK export can deadlock: JWK_PUBLIC)
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', ...JWK_PUBLIC });
  // SubjectPublicKeyInfo from the point's coordinates: OpenSSL 3's DER encoder costs ~20× the JWK export
  const jwk = generatedPublicJwk(publicKey);
  const spki = new Uint8Array(Buffer.concat([P256_SPKI_PREFIX, Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]));
  const cri = derWrap(0x30, [Uint8Array.of(0x02, 0x01, 0x00), SUBJECT_CN_CARD, spki, Uint8Array.of(0xa0, 0x00)]);
  const csrDer = derWrap(0x30, [cri, ALG_ECDSA_SHA256, derWrap(0x03, [Uint8Array.of(0), nodeSign('sha256', cri, { key: privateKey, dsaEncoding: 'der' })])]);
  return { csrDer, spkiSha256: new Uint8Array(createHash('sha256').update(spki).digest()) };
}

/** The card's answer to a nonce: a CSR (made ahead) and the statement signed now. */
export function cardAnswer(uid: Uint8Array, attestKey: KeyObject, csr: { readonly csrDer: Uint8Array; readonly spkiSha256: Uint8Array }, nonce: Uint8Array, counter: number): CardAnswer {
  const statement = SETLS_ATTESTATION_V1.encode({ uid, slot: 1, spkiSha256: csr.spkiSha256, nonce, counter });
  return { csrDer: csr.csrDer, statement, signature: new Uint8Array(nodeSign('sha256', statement, attestKey)) };
}

// ---------------------------------------------------------------- the worker
function workerMain(): void {
  const data = workerData as { cards: LoadGenCard[]; ahead: number };
  const cards = data.cards.map((c) => ({ uid: new Uint8Array(Buffer.from(c.uid, 'hex')), key: createPrivateKey({ key: Buffer.from(c.key, 'base64'), format: 'der', type: 'pkcs8' }) }));
  const ready: ReturnType<typeof freshCsr>[] = [];
  const pending: SignRequest[] = [];
  let counter = 0;
  let scheduled = false;
  const serve = (): void => {
    const out: OutMessage[] = [];
    while (pending.length > 0 && ready.length > 0) {
      const r = pending.shift()!;
      try {
        const card = cards[r.card];
        if (!card) throw new Error(`no card #${r.card}`);
        out.push({ id: r.id, ...cardAnswer(card.uid, card.key, ready.shift()!, r.nonce, ++counter) });
      } catch (e) {
        out.push({ id: r.id, error: (e as Error).message });
      }
    }
    if (out.length > 0) parentPort!.postMessage(out);
  };
  const tick = (): void => {
    scheduled = false;
    // a few CSRs, then the queue of messages again (a sign request waits at most a few key pairs)
    for (let k = 0; k < 4 && ready.length < data.ahead; k++) ready.push(freshCsr());
    serve();
    schedule();
  };
  const schedule = (): void => {
    if (!scheduled && ready.length < data.ahead) {
      scheduled = true;
      setImmediate(tick);
    }
  };
  parentPort!.on('message', (m: InMessage) => {
    if (m.kind === 'window') ready.length = 0;
    else pending.push(...m.reqs);
    serve();
    schedule();
  });
  schedule();
}

// ---------------------------------------------------------------- the main-thread side
const SELF = new URL(import.meta.url);

/** The load generator worker, seen from the operator's thread. */
export class LoadGenerator {
  private nextId = 1;
  private batch: SignRequest[] = [];
  private readonly waiting = new Map<number, { resolve(a: CardAnswer): void; reject(e: Error): void }>();
  private constructor(readonly worker: Worker) {
    worker.on('message', (ms: OutMessage[]) => {
      for (const m of ms) {
        const w = this.waiting.get(m.id);
        if (!w) continue;
        this.waiting.delete(m.id);
        if ('error' in m) w.reject(new Error(`load generator: ${m.error}`));
        else w.resolve(m);
      }
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', (code) => this.failAll(new Error(`load generator worker exited (${code})`)));
  }

  /** From the sources (tsx) Node 20 refuses a .ts worker entry: a two-line entry registers tsx first. */
  static start(cards: readonly LoadGenCard[], ahead: number): LoadGenerator {
    const wd = { cards, ahead };
    if (!SELF.pathname.endsWith('.ts')) return new LoadGenerator(new Worker(SELF, { workerData: wd }));
    const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(SELF.href)}); });`;
    return new LoadGenerator(new Worker(entry, { eval: true, workerData: wd }));
  }

  /** The measured window starts: CSRs made before it are dropped (they would be free in it). */
  openWindow(): void {
    this.worker.postMessage({ kind: 'window' } satisfies InMessage);
  }

  /** Card #`card`'s CSR and attestation statement over `nonce` (sent with this turn's other requests). */
  sign(card: number, nonce: Uint8Array): Promise<CardAnswer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.batch.push({ id, card, nonce }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const reqs = this.batch;
    this.batch = [];
    this.worker.postMessage({ kind: 'sign', reqs } satisfies InMessage);
  }

  /** The worker's event-loop utilisation (since `since`, a former answer of this call). */
  elu(since?: EventLoopUtilization): EventLoopUtilization {
    return since ? this.worker.performance.eventLoopUtilization(since) : this.worker.performance.eventLoopUtilization();
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }
}

if (!isMainThread && (workerData as { cards?: unknown } | null)?.cards) workerMain();
