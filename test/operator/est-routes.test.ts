// The operator's RFC 7030 resources over real HTTPS, read by curl and openssl: /cacerts is the
// issuing CA as certs-only CMS, /csrattrs names the signature, the curve and a fresh challenge that
// the operator's own key checks; wrong methods and unknown resources get text/plain errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { decodeBase64Body, decodeCsrAttrs, EstOid, readCertsOnly } from '../../src/operator/est/codec.js';
import { checkChallenge } from '../../src/operator/est/challenge.js';
import { EST_CHALLENGE_KEY_FILE, estChallengeKey } from '../../src/operator/est/routes.js';
import { requirePeer } from '../interop/peers.js';
import { makeManufacturer, tempDir } from './helpers.js';

let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let tlsCa: string;

before(async () => {
  const m = await makeManufacturer();
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  await initOperator({ dir, manufacturerCaPems: [m.caPem] });
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false, verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1) });
  tlsCa = svc.operator.paths.tlsCaCert;
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

/** curl in a child process, awaited: the operator runs in this process, so never a spawnSync. */
async function curl(path: string, extra: string[] = []): Promise<{ status: number; type: string; body: string }> {
  const r = await promisify(execFile)('curl', ['-sS', '--cacert', tlsCa, '-w', '\n%{http_code} %{content_type}', ...extra, `${svc.url}${path}`], { encoding: 'utf8', timeout: 30_000 });
  const cut = r.stdout.lastIndexOf('\n');
  const [status, ...type] = r.stdout.slice(cut + 1).split(' ');
  return { status: Number(status), type: type.join(' '), body: r.stdout.slice(0, cut) };
}

test('GET /.well-known/est/cacerts: base64 certs-only CMS that openssl pkcs7 prints as the issuing CA', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const r = await curl('/.well-known/est/cacerts');
  assert.equal(r.status, 200);
  assert.equal(r.type, 'application/pkcs7-mime');
  const der = execFileSync('openssl', ['base64', '-d'], { input: r.body });
  const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: der }).toString();
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(printed)?.[0];
  assert.ok(pem, printed);
  const caPem = readFileSync(svc.operator.paths.caCert, 'utf8');
  const fp = (p: string): string => execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: p }).toString().trim();
  assert.equal(fp(pem), fp(caPem), 'the certificate is the issuing CA (ca.crt)');
  assert.deepEqual(readCertsOnly(decodeBase64Body(r.body)).map((c) => Buffer.from(c)), [Buffer.from(svc.operator.ca.certDer)]);
});

test('GET /.well-known/est/csrattrs: openssl asn1parse reads it; the challenge is fresh each time and verifies under the operator key', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const a = await curl('/.well-known/est/csrattrs');
  const b = await curl('/.well-known/est/csrattrs');
  assert.equal(a.status, 200);
  assert.equal(a.type, 'application/csrattrs');
  const der = execFileSync('openssl', ['base64', '-d'], { input: a.body });
  const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der }).toString();
  assert.match(parsed, /:ecdsa-with-SHA256/);
  assert.match(parsed, /:id-ecPublicKey/);
  assert.match(parsed, /:prime256v1/);
  assert.match(parsed, /:challengePassword/);
  const challengeOf = (body: string): string => {
    const item = decodeCsrAttrs(decodeBase64Body(body)).find((i) => 'type' in i && i.type === EstOid.challengePassword);
    assert.ok(item && 'values' in item);
    const v = item.values[0]!;
    assert.equal(v[0], 0x0c, 'UTF8String');
    return Buffer.from(v.subarray(2)).toString('utf8');
  };
  const ca = challengeOf(a.body);
  const cb = challengeOf(b.body);
  assert.notEqual(ca, cb, 'a fresh challenge per request');
  const key = estChallengeKey(svc.operator.paths.keysDir);
  const now = svc.operator.now();
  for (const c of [ca, cb]) {
    const r = checkChallenge(key, c, now);
    assert.ok(r.ok, c);
    assert.ok(r.expiresAt > now && r.expiresAt <= now + 5 * 60 * 1000 + 1000, 'five minutes');
  }
  assert.equal(checkChallenge(new Uint8Array(32), ca, now).ok, false, 'another key does not verify it');
  const st = statSync(join(svc.operator.paths.keysDir, EST_CHALLENGE_KEY_FILE));
  assert.equal(st.mode & 0o777, 0o600);
});

test('EST errors: POST to cacerts and GET simpleenroll/simplereenroll are 405; unknown resources are 404; text/plain with a stable code', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const post = await curl('/.well-known/est/cacerts', ['-X', 'POST', '--data', 'x']);
  assert.equal(post.status, 405);
  assert.match(post.type, /^text\/plain/);
  assert.match(post.body, /^ERR_OP_METHOD_NOT_ALLOWED: /);
  const get = await curl('/.well-known/est/simpleenroll');
  assert.equal(get.status, 405);
  assert.match(get.body, /^ERR_OP_METHOD_NOT_ALLOWED: /);
  const getRe = await curl('/.well-known/est/simplereenroll');
  assert.equal(getRe.status, 405);
  assert.match(getRe.body, /^ERR_OP_METHOD_NOT_ALLOWED: /);
  for (const p of ['/.well-known/est/', '/.well-known/est/label/cacerts', '/.well-known/est/label/simpleenroll']) {
    const r = await curl(p, p.endsWith('enroll') ? ['-X', 'POST', '--data', 'x'] : []);
    assert.equal(r.status, 404, p);
    assert.match(r.body, /^ERR_OP_NOT_FOUND: /);
  }
});
