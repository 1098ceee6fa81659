/**
 * The executors' test bench before the security domain is wired into the real card: a card made of
 * the real ISD applet on its in-memory test platform (test/card/isd: FakePlatform + MiniCard),
 * personalised by the real factory sequence with a test manufacturer CA and a transport master,
 * behind a real device agent (src/agent, over HTTPS) and a real operator (startOperator: API,
 * RelayHub, executors, runner) in a temp folder. The card's APDU function may be wrapped (gates,
 * counters) and the card power-cycled.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex, fromHex } from '../../src/bytes/index.js';
import { DeviceAgent } from '../../src/agent/index.js';
import { factoryKeySet, personalise, type ManifestEntry } from '../../src/factory/personalise.js';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator, type StartOptions } from '../../src/operator/service.js';
import { createAgentToken } from '../../src/operator/auth/agent-tokens.js';
import { writeSecretFile } from '../../src/operator/keys/secret-files.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import type { JobRow } from '../../src/operator/store/types.js';
import { FakePlatform, FakeStore } from '../card/isd/fake-platform.js';
import { MiniCard } from '../card/isd/harness.js';
import { makeCa, type TestCa } from '../card/isd/test-ca.js';
import { call, tempDir, type HttpResult } from './helpers.js';
import { waitUntil } from '../wait.js';

export const TRANSPORT_ID = 'test';

export interface Manufacturing {
  readonly ca: TestCa;
  readonly caPem: string;
  readonly transportMaster: Uint8Array;
}

const pem = (der: Uint8Array): string => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;

export async function makeManufacturing(name = 'setls test manufacturer'): Promise<Manufacturing> {
  const ca = await makeCa(name);
  return { ca, caPem: pem(ca.cert), transportMaster: new Uint8Array(randomBytes(16)) };
}

/** A sealed card: the ISD applet on its fake platform, inside the mini card OS. */
export class TestCard {
  /** Replaced to intercept every APDU (default: the card). */
  filter: ((apdu: Uint8Array, next: (a: Uint8Array) => Uint8Array) => Uint8Array | Promise<Uint8Array>) | undefined;
  /** Short APDUs only (the mini card OS parses no extended SELECT). */
  readonly transport: CardTransport;
  apdus = 0;
  private constructor(
    readonly card: MiniCard,
    readonly uid: Uint8Array,
    readonly manifest: ManifestEntry,
  ) {
    card.logging = false;
    this.transport = this.newTransport();
  }

  /** Another transport to the same card (a second agent, after the first one "died" mid-APDU). */
  newTransport(): CardTransport {
    const inner = new InProcessTransport(async (apdu) => {
      this.apdus++;
      return this.filter ? this.filter(apdu, (a) => this.card.transmit(a)) : this.card.transmit(apdu);
    });
    return { extendedLength: false, transmit: (a) => inner.transmit(a), close: () => inner.close() };
  }

  static async create(m: Manufacturing, uid: Uint8Array = new Uint8Array(randomBytes(16))): Promise<TestCard> {
    const platform = new FakePlatform(new FakeStore(FakePlatformBlank()), { now: Math.floor(Date.now() / 1000) });
    const card = new MiniCard(platform);
    const manifest = await personalise(card.transmit, {
      uid,
      factoryKeys: factoryKeySet(m.transportMaster, uid),
      manufacturerCa: async ({ csr }) => [await m.ca.issueFromCsr(csr)],
    });
    return new TestCard(card, uid, manifest);
  }

  get uidHex(): string {
    return toHex(this.uid);
  }

  get platform(): FakePlatform {
    return this.card.platform;
  }

  /** The card's manifest entry; `withCounter`: with its next sequence counter (what a factory may say). */
  manifestEntry(extra: Record<string, unknown> = {}, withCounter = false): Record<string, unknown> {
    if (withCounter) extra = { sequenceCounter: this.platform.record().sequenceCounter, ...extra };
    return { uid: this.uidHex, attestationCertificate: pem(this.manifest.attestationChain[0]!), kvn: '30', transportKeyId: TRANSPORT_ID, ...extra };
  }

  /** The persistent state (ISD record and TLS stand-in) as bytes: "nothing changed" comparisons. */
  snapshot(): Uint8Array {
    return this.platform.store.bytes.slice();
  }
}

function FakePlatformBlank(): Uint8Array {
  return FakePlatform.blank().store.bytes.slice();
}

export interface Bench {
  readonly dir: string;
  readonly svc: RunningOperator;
  readonly url: string;
  readonly adminToken: string;
  readonly tlsCaPem: string;
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpResult>;
  /** Creates a job through the API; returns it. */
  job(uid: string, kind: string, body?: Record<string, unknown>): Promise<JobRow & { card: string }>;
  /** Polls the job until it ends. */
  wait(id: string, timeoutMs?: number): Promise<Record<string, any>>;
  agentToken(hostId: string): Promise<string>;
  startAgent(cards: readonly TestCard[], hostId?: string, log?: (l: string) => void, transports?: readonly CardTransport[]): Promise<DeviceAgent>;
  importCards(cards: readonly TestCard[]): Promise<void>;
  close(): Promise<void>;
}

export async function makeBench(m: Manufacturing, opts: Partial<StartOptions> = {}): Promise<Bench> {
  const t = tempDir('setls-exec-');
  const dir = join(t.dir, 'op');
  const init = await initOperator({ dir, manufacturerCaPems: [m.caPem] });
  writeSecretFile(join(dir, 'keys', `transport-${TRANSPORT_ID}.key`), toHex(m.transportMaster) + '\n');
  const svc = await startOperator({ dir, port: 0, quiet: true, writeServeInfo: false, runner: { pollMs: 50, leaseMs: 10_000 }, relay: { pollHoldMs: 20_000 }, scriptTimeoutMs: 30_000, ...opts });
  const tlsCaPem = readFileSync(join(dir, 'tls-ca.crt'), 'utf8');
  const agents: DeviceAgent[] = [];
  const api = (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpResult> =>
    call(svc.url, join(dir, 'tls-ca.crt'), method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) });
  const bench: Bench = {
    dir,
    svc,
    url: svc.url,
    adminToken: init.adminToken,
    tlsCaPem,
    api,
    async job(uid, kind, body = {}) {
      const r = await api('POST', `/v1/cards/${uid}/${kind}`, body);
      if (r.status !== 202) throw new Error(`POST ${kind}: ${r.status} ${r.body.toString()}`);
      return r.json().job;
    },
    async wait(id, timeoutMs = 120_000) {
      let job: Record<string, any> = {};
      await waitUntil(
        async () => {
          job = (await api('GET', `/v1/jobs/${id}`)).json().job;
          return ['succeeded', 'failed', 'timed_out', 'canceled'].includes(job['status']);
        },
        () => `job ${id} to end (now ${JSON.stringify(job)})`,
        timeoutMs,
        25,
      );
      return job;
    },
    agentToken: (hostId) => createAgentToken(svc.operator.store, hostId),
    async startAgent(cards, hostId = 'dev-1', log, transports) {
      const token = await createAgentToken(svc.operator.store, hostId);
      const a = await DeviceAgent.start({
        operatorUrl: svc.url,
        ca: tlsCaPem,
        token,
        hostId,
        cards: cards.map((c, i) => ({ transport: transports?.[i] ?? c.transport })),
        ...(log ? { log } : {}),
        backoffInitialMs: 50,
        backoffMaxMs: 500,
      });
      agents.push(a);
      return a;
    },
    async importCards(cards) {
      const r = await api('POST', '/v1/manifests', { cards: cards.map((c) => c.manifestEntry()) });
      if (r.status !== 201 && r.status !== 200) throw new Error(`import: ${r.status} ${r.body.toString()}`);
    },
    async close() {
      for (const a of agents) await a.stop();
      await svc.stop();
      t.cleanup();
    },
  };
  return bench;
}

export { fromHex };
