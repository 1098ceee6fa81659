/**
 * EST for clients that are not cards, against a real operator over HTTPS with openssl and curl as
 * the client, on SQLite and on PostgreSQL: an operator-issued enrolment credential (curl --user)
 * lets `openssl req` CSRs through /simpleenroll, the answer prints with `openssl pkcs7
 * -print_certs` and verifies with `openssl verify -CAfile` against /cacerts; no credential, a wrong
 * password, a used-up, expired or revoked credential, or a name outside its profile are refused and
 * nothing is issued; /simplereenroll with `curl --cert/--key` of that certificate renews it (same
 * subject and SAN; the old one superseded), and refuses another subject, a superseded or revoked
 * certificate (which is in the CRL), no client certificate, a foreign one, and a card's.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { randomSerial, spkiOfCertificate, sha256 } from '../../src/operator/pki/x509.js';
import { requirePeer } from '../interop/peers.js';
import { call, tempDir, type HttpResult } from './helpers.js';
import { createTempDb, pgUnavailable, type TempDb } from './pg-helpers.js';
import { skipOrFail } from '../ci.js';

const DAY = 86_400_000;

interface Env {
  dir: string;
  svc: RunningOperator;
  caFile: string;
  /** Moves the operator's clock. */
  skew: { ms: number };
  api(method: string, path: string, body?: unknown): Promise<HttpResult>;
  close(): Promise<void>;
}

async function start(store?: string): Promise<Env> {
  const t = tempDir('setls-estc-');
  const dir = join(t.dir, 'op');
  const init = await initOperator({ dir, ...(store ? { store } : {}) });
  const skew = { ms: 0 };
  const svc = await startOperator({ dir, port: 0, quiet: true, writeServeInfo: false, runJobs: false, now: () => Date.now() + skew.ms, ...(store ? { store } : {}) });
  const caFile = join(dir, 'tls-ca.crt');
  return {
    dir: t.dir,
    svc,
    caFile,
    skew,
    api: (method, path, body) => call(svc.url, caFile, method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}) }),
    async close() {
      await svc.stop();
      t.cleanup();
    },
  };
}

interface Curl {
  status: number;
  body: string;
  headers: string;
}

let n = 0;
async function curl(env: Env, path: string, extra: string[]): Promise<Curl> {
  const hdr = join(env.dir, `h-${++n}.txt`);
  const r = await promisify(execFile)('curl', ['-sS', '--cacert', env.caFile, '-D', hdr, '-w', '\n%{http_code}', ...extra, `${env.svc.url}${path}`], { encoding: 'utf8', timeout: 30_000 });
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut), headers: readFileSync(hdr, 'utf8').toLowerCase() };
}

/** A new key (P-256 unless told) and a DER CSR from `openssl req`, written as base64 for curl. */
function opensslCsr(env: Env, subj: string, san: string | null, keyAlg: string[] = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']): { key: string; csrB64: string } {
  const key = join(env.dir, `k-${++n}.pem`);
  const der = join(env.dir, `csr-${n}.der`);
  execFileSync('openssl', ['req', '-new', ...keyAlg, '-nodes', '-keyout', key, '-subj', subj, ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-outform', 'DER', '-out', der], { stdio: 'pipe' });
  const csrB64 = join(env.dir, `csr-${n}.b64`);
  writeFileSync(csrB64, readFileSync(der).toString('base64'));
  return { key, csrB64 };
}

function post(csrB64: string, more: string[] = []): string[] {
  return ['-H', 'Content-Type: application/pkcs10', '--data-binary', `@${csrB64}`, ...more];
}

/** The certs-only answer → [leaf PEM file, printed text]. */
function leafOf(env: Env, body: string): { pem: string; printed: string } {
  const der = execFileSync('openssl', ['base64', '-d'], { input: body });
  const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: der }).toString();
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(printed)![0];
  const pem = join(env.dir, `leaf-${++n}.pem`);
  writeFileSync(pem, first);
  return { pem, printed };
}

function refused(r: Curl, status: number, code: string): void {
  assert.equal(r.status, status, r.body);
  assert.equal(r.body.split(':')[0], code, r.body);
}

async function newCredential(env: Env, body: Record<string, unknown>): Promise<{ user: string; password: string }> {
  const r = await env.api('POST', '/v1/est/credentials', { name: 'lab', ...body });
  assert.equal(r.status, 201, r.body.toString());
  const j = r.json();
  return { user: j.username, password: j.password };
}

const estCerts = async (env: Env): Promise<any[]> => (await env.api('GET', '/v1/est/certificates')).json().items;
const usesLeft = async (env: Env, user: string): Promise<number> => (await env.api('GET', '/v1/est/credentials')).json().items.find((c: any) => c.id === user).usesLeft;

function suite(name: string, open: () => Promise<Env | string>): void {
  describe(`EST clients without a card (${name})`, () => {
    let env: Env | undefined;
    let why: string | undefined;
    before(async () => {
      const r = await open();
      if (typeof r === 'string') why = r;
      else env = r;
    });
    after(async () => env?.close());
    const ready = (t: Parameters<typeof requirePeer>[0]): Env | null => {
      if (why !== undefined) {
        skipOrFail(t, why);
        return null;
      }
      if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return null;
      return env!;
    };

    test('openssl req + curl --user → certs-only answer that openssl prints and verifies against /cacerts; refusals issue nothing', async (t) => {
      const e = ready(t);
      if (!e) return;
      const cred = await newCredential(e, { uses: 1, dns: ['*.lab.example'], ip: ['10.0.0.7'], days: 30 });
      const { csrB64 } = opensslCsr(e, '/CN=dev1.lab.example', 'DNS:dev1.lab.example,IP:10.0.0.7');

      // without a credential: 401 with a Basic challenge; a wrong password: 401; nothing issued
      const none = await curl(e, '/.well-known/est/simpleenroll', post(csrB64));
      refused(none, 401, 'ERR_OP_EST_CREDENTIAL');
      assert.match(none.headers, /www-authenticate: basic realm="setls-est"/);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `${cred.user}:${cred.password}x`])), 401, 'ERR_OP_EST_CREDENTIAL');
      refused(await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `estc-0000000000000000:${cred.password}`])), 401, 'ERR_OP_EST_CREDENTIAL');
      // a name outside the profile: refused, the use not spent
      const outside = opensslCsr(e, '/CN=dev1.other.example', null);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(outside.csrB64, ['--user', `${cred.user}:${cred.password}`])), 403, 'ERR_OP_EST_NAME');
      const twoRdns = opensslCsr(e, '/CN=dev1.lab.example/O=Lab', null);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(twoRdns.csrB64, ['--user', `${cred.user}:${cred.password}`])), 403, 'ERR_OP_EST_NAME');
      assert.deepEqual(await estCerts(e), []);
      assert.equal(await usesLeft(e, cred.user), 1);

      const ok = await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `${cred.user}:${cred.password}`]));
      assert.equal(ok.status, 200, ok.body);
      assert.match(ok.headers, /content-type: application\/pkcs7-mime; smime-type=certs-only/);
      const { pem, printed } = leafOf(e, ok.body);
      assert.match(printed, /subject=CN\s*=\s*dev1\.lab\.example/, printed);
      const text = execFileSync('openssl', ['x509', '-in', pem, '-noout', '-text']).toString();
      assert.match(text, /DNS:dev1\.lab\.example, IP Address:10\.0\.0\.7/);
      const cacerts = await curl(e, '/.well-known/est/cacerts', []);
      const caPem = join(e.dir, `cacerts-${++n}.pem`);
      writeFileSync(caPem, execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: execFileSync('openssl', ['base64', '-d'], { input: cacerts.body }) }));
      assert.match(execFileSync('openssl', ['verify', '-CAfile', caPem, pem]).toString(), /: OK/);
      const listed = await estCerts(e);
      assert.equal(listed.length, 1);
      assert.equal(listed[0].subject, 'CN=dev1.lab.example');
      assert.equal(listed[0].credential, cred.user);
      assert.equal(await usesLeft(e, cred.user), 0);

      // used up: the same credential again is refused, nothing more issued
      const again = opensslCsr(e, '/CN=dev2.lab.example', null);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(again.csrB64, ['--user', `${cred.user}:${cred.password}`])), 401, 'ERR_OP_EST_CREDENTIAL');
      assert.equal((await estCerts(e)).length, 1);
    });

    test('an expired or revoked credential is refused; Ed25519 and P-384 keys are accepted', async (t) => {
      const e = ready(t);
      if (!e) return;
      const before = (await estCerts(e)).length;
      const expiring = await newCredential(e, { uses: 5, cn: ['svc-a'], expiresAt: new Date(e.svc.operator.now() + DAY).toISOString() });
      const revoked = await newCredential(e, { uses: 5, cn: ['svc-a'] });
      assert.equal((await e.api('POST', `/v1/est/credentials/${revoked.user}/revoke`, {})).status, 200);
      const { csrB64 } = opensslCsr(e, '/CN=svc-a', null, ['-newkey', 'ed25519']);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `${revoked.user}:${revoked.password}`])), 401, 'ERR_OP_EST_CREDENTIAL');
      e.skew.ms = 2 * DAY;
      try {
        refused(await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `${expiring.user}:${expiring.password}`])), 401, 'ERR_OP_EST_CREDENTIAL');
      } finally {
        e.skew.ms = 0;
      }
      assert.equal((await estCerts(e)).length, before, 'nothing issued');
      const ed = await curl(e, '/.well-known/est/simpleenroll', post(csrB64, ['--user', `${expiring.user}:${expiring.password}`]));
      assert.equal(ed.status, 200, ed.body);
      assert.match(execFileSync('openssl', ['x509', '-in', leafOf(e, ed.body).pem, '-noout', '-text']).toString(), /ED25519/);
      const p384 = opensslCsr(e, '/CN=svc-a', null, ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']);
      const r384 = await curl(e, '/.well-known/est/simpleenroll', post(p384.csrB64, ['--user', `${expiring.user}:${expiring.password}`]));
      assert.equal(r384.status, 200, r384.body);
      const weak = opensslCsr(e, '/CN=svc-a', null, ['-newkey', 'rsa:1024']);
      refused(await curl(e, '/.well-known/est/simpleenroll', post(weak.csrB64, ['--user', `${expiring.user}:${expiring.password}`])), 403, 'ERR_OP_KEY_POLICY');
      assert.equal(await usesLeft(e, expiring.user), 3);
    });

    test('/simplereenroll with curl --cert/--key: same names renew (old superseded); another subject, the superseded or a revoked certificate, none, a foreign one are refused', async (t) => {
      const e = ready(t);
      if (!e) return;
      const cred = await newCredential(e, { uses: 2, dns: ['*.fleet.example'] });
      const first = opensslCsr(e, '/CN=gw1.fleet.example', 'DNS:gw1.fleet.example,DNS:gw1-alt.fleet.example');
      const enrolled = await curl(e, '/.well-known/est/simpleenroll', post(first.csrB64, ['--user', `${cred.user}:${cred.password}`]));
      assert.equal(enrolled.status, 200, enrolled.body);
      const old = leafOf(e, enrolled.body).pem;
      const oldSerial = execFileSync('openssl', ['x509', '-in', old, '-noout', '-serial']).toString().trim().split('=')[1]!.toLowerCase();
      const tls = (cert: string, key: string): string[] => ['--cert', cert, '--key', key];

      // no client certificate
      const renewal = opensslCsr(e, '/CN=gw1.fleet.example', 'DNS:gw1-alt.fleet.example,DNS:gw1.fleet.example');
      refused(await curl(e, '/.well-known/est/simplereenroll', post(renewal.csrB64)), 403, 'ERR_OP_EST_CLIENT_CERTIFICATE');
      // a foreign certificate (self-signed, same names)
      const foreignKey = join(e.dir, `fk-${++n}.pem`);
      const foreign = join(e.dir, `fc-${n}.pem`);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', foreignKey, '-subj', '/CN=gw1.fleet.example', '-days', '1', '-out', foreign], { stdio: 'pipe' });
      refused(await curl(e, '/.well-known/est/simplereenroll', post(renewal.csrB64, tls(foreign, foreignKey))), 403, 'ERR_OP_EST_CLIENT_CERTIFICATE');
      // another subject / another SAN
      const other = opensslCsr(e, '/CN=gw2.fleet.example', 'DNS:gw1.fleet.example,DNS:gw1-alt.fleet.example');
      refused(await curl(e, '/.well-known/est/simplereenroll', post(other.csrB64, tls(old, first.key))), 403, 'ERR_OP_EST_NAME');
      const fewer = opensslCsr(e, '/CN=gw1.fleet.example', 'DNS:gw1.fleet.example');
      refused(await curl(e, '/.well-known/est/simplereenroll', post(fewer.csrB64, tls(old, first.key))), 403, 'ERR_OP_EST_NAME');
      assert.equal((await estCerts(e)).filter((c) => c.status === 'good' && c.subject === 'CN=gw1.fleet.example').length, 1, 'nothing issued');

      // same names, new key: renewed; the old certificate superseded
      const r = await curl(e, '/.well-known/est/simplereenroll', post(renewal.csrB64, tls(old, first.key)));
      assert.equal(r.status, 200, r.body);
      const renewed = leafOf(e, r.body);
      assert.match(renewed.printed, /subject=CN\s*=\s*gw1\.fleet\.example/);
      const certs = await estCerts(e);
      const oldRow = certs.find((c) => c.serial === oldSerial);
      const newRow = certs.find((c) => c.replaces === oldSerial);
      assert.equal(oldRow.status, 'superseded');
      assert.equal(newRow.status, 'good');
      assert.deepEqual(newRow.san, oldRow.san);
      assert.equal(await usesLeft(e, cred.user), 1, 'renewal spends no credential use');
      // the superseded certificate cannot renew again
      const again = opensslCsr(e, '/CN=gw1.fleet.example', 'DNS:gw1.fleet.example,DNS:gw1-alt.fleet.example');
      refused(await curl(e, '/.well-known/est/simplereenroll', post(again.csrB64, tls(old, first.key))), 403, 'ERR_OP_EST_CLIENT_CERTIFICATE');

      // the new one revoked: in the CRL, and refused on /simplereenroll
      const rv = await e.api('POST', `/v1/est/certificates/${newRow.serial}/revoke`, { reason: 'keyCompromise' });
      assert.equal(rv.status, 200, rv.body.toString());
      const crl = await e.api('GET', '/v1/ca/crl');
      const crlText = execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], { input: crl.body }).toString();
      assert.match(crlText.replace(/:/g, '').toLowerCase(), new RegExp(`serial number ${newRow.serial}`));
      refused(await curl(e, '/.well-known/est/simplereenroll', post(again.csrB64, tls(renewed.pem, renewal.key))), 403, 'ERR_OP_EST_CLIENT_CERTIFICATE');
      // the other endpoints still answer a client that presents no certificate
      assert.equal((await curl(e, '/healthz', [])).status, 200);
    });

    test("/simplereenroll refuses a card's certificate: card identities are renewed by the re-key job", async (t) => {
      const e = ready(t);
      if (!e) return;
      const op = e.svc.operator;
      // A card certificate as the registry holds it, for a key we hold here (a real card never
      // gives its key out; this stands for someone presenting one).
      const key = join(e.dir, `ck-${++n}.pem`);
      execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      const spki = execFileSync('openssl', ['ec', '-in', key, '-pubout', '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const serial = randomSerial();
      const now = op.now();
      const der = await op.ca.issue({ spkiDer: spki, serial, subject: 'CN=00112233', dnsNames: [], ipAddresses: [], notBefore: new Date(now - 60_000), notAfter: new Date(now + DAY) });
      const s = op.store;
      const mId = randomUUID();
      await s.addManufacturerCa({ id: mId, name: 'm', certDer: Uint8Array.of(0x30, 2), fingerprint: randomUUID(), notAfter: now + DAY, createdAt: now });
      const batchId = randomUUID();
      await s.addManifestBatch({ id: batchId, manufacturerCaId: mId, name: 'b', count: 1, importedBy: 'test', importedAt: now });
      const cardId = randomUUID();
      await s.insertCard({ id: cardId, uid: Uint8Array.of(0, 0x11, 0x22, 0x33), batchId, attestCertDer: Uint8Array.of(0x30, 1), attestSpkiSha256: new Uint8Array(32), lifecycle: 'active', kvn: 1, transportKeyId: null, labels: {}, profile: {}, createdAt: now });
      const identityId = randomUUID();
      await s.insertIdentity({ id: identityId, cardId, slot: 1, alg: 'p256', spkiDer: spki, spkiSha256: sha256(spki), state: 'active', attestedAt: now, createdAt: now });
      await s.insertCertificate({ serial, identityId, cardId, caId: op.caId, jobId: null, enrolmentId: null, subject: 'CN=00112233', san: {}, notBefore: now - 60_000, notAfter: now + DAY, der, status: 'good', revokedAt: null, reason: null, createdAt: now });
      const certPem = join(e.dir, `cc-${n}.pem`);
      writeFileSync(certPem, `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`);
      assert.deepEqual(Buffer.from(spkiOfCertificate(der)), spki);
      const { csrB64 } = opensslCsr(e, '/CN=00112233', null);
      refused(await curl(e, '/.well-known/est/simplereenroll', post(csrB64, ['--cert', certPem, '--key', key])), 403, 'ERR_OP_EST_CARD_CERTIFICATE');
      assert.equal((await s.certificateBySerial(serial))!.status, 'good');
    });

    test('4 concurrent curl enrolments on a credential with 2 uses: exactly 2 certificates issued, 2 refused', async (t) => {
      const e = ready(t);
      if (!e) return;
      const before = (await estCerts(e)).length;
      const cred = await newCredential(e, { uses: 2, cn: ['burst'] });
      const csrs = Array.from({ length: 4 }, () => opensslCsr(e, '/CN=burst', null));
      const results = await Promise.all(csrs.map((c) => curl(e, '/.well-known/est/simpleenroll', post(c.csrB64, ['--user', `${cred.user}:${cred.password}`]))));
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 401, 401], results.map((r) => r.body.slice(0, 120)).join('\n'));
      assert.equal((await estCerts(e)).length, before + 2);
      assert.equal(await usesLeft(e, cred.user), 0);
    });
  });
}

suite('sqlite', () => start());
let db: TempDb | undefined;
suite('postgres', async () => {
  const why = await pgUnavailable();
  if (why !== undefined) return why;
  db = await createTempDb();
  return start(db.url);
});
after(async () => db?.drop());
