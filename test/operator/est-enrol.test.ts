/**
 * POST /.well-known/est/simpleenroll (zero-touch, Mode B) against a real operator over HTTPS, with
 * curl and openssl as the client: a genuine card (the real security domain on its test platform)
 * makes its key and CSR over the /csrattrs challenge without secure messaging, the operator answers
 * a certs-only CMS that `openssl pkcs7 -print_certs` prints; a replayed challenge, a counterfeit
 * card's attestation, a software key from `openssl req` with a stolen challenge (and no enrolment
 * credential: est-client.test.ts), a forged challenge
 * and an attestation over another nonce are each refused with their own code, nothing issued.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AdminClient, AdminRequest, Field, Fn, KeyAlg, parseFunctionResponse, req } from '../../src/gp/admin/index.js';
import { cardCsr, challengeNonce } from '../../src/enrol/est-card.js';
import { decodeBase64Body, decodeCsrAttrs, EstOid, readCertsOnly } from '../../src/operator/est/codec.js';
import { makeCa } from '../card/isd/test-ca.js';
import { requirePeer } from '../interop/peers.js';
import { makeBench, makeManufacturing, TestCard, type Bench, type Manufacturing } from './isd-fixture.js';

let m: Manufacturing;
let bench: Bench;
let caFile: string;
before(async () => {
  m = await makeManufacturing();
  bench = await makeBench(m);
  caFile = join(bench.dir, 'tls-ca-for-curl.pem');
  writeFileSync(caFile, bench.tlsCaPem);
});
after(() => bench.close());

let n = 0;
async function curl(path: string, extra: string[] = []): Promise<{ status: number; type: string; body: string }> {
  const r = await promisify(execFile)('curl', ['-sS', '--cacert', caFile, '-w', '\n%{http_code} %{content_type}', ...extra, `${bench.url}${path}`], { encoding: 'utf8', timeout: 30_000 });
  const cut = r.stdout.lastIndexOf('\n');
  const [status, ...type] = r.stdout.slice(cut + 1).split(' ');
  return { status: Number(status), type: type.join(' '), body: r.stdout.slice(0, cut) };
}

async function challenge(): Promise<string> {
  const r = await curl('/.well-known/est/csrattrs');
  assert.equal(r.status, 200);
  const item = decodeCsrAttrs(decodeBase64Body(r.body)).find((i) => 'type' in i && i.type === EstOid.challengePassword);
  assert.ok(item && 'values' in item);
  return Buffer.from(item.values[0]!.subarray(2)).toString('utf8');
}

/** POSTs a DER CSR as base64 application/pkcs10 with curl. */
async function enrol(csrDer: Uint8Array): Promise<{ status: number; type: string; body: string }> {
  const file = join(bench.dir, `csr-${++n}.b64`);
  writeFileSync(file, Buffer.from(csrDer).toString('base64'));
  return curl('/.well-known/est/simpleenroll', ['-H', 'Content-Type: application/pkcs10', '--data-binary', `@${file}`]);
}

const certificates = async (card: TestCard): Promise<any[]> => (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json().certificates;

function refusedWith(r: { status: number; type: string; body: string }, status: number, code: string): void {
  assert.equal(r.status, status, r.body);
  assert.match(r.type, /^text\/plain/);
  assert.equal(r.body.split(':')[0], code, r.body);
}

test('a genuine card enrols over EST: certs-only answer that openssl prints; the same challenge again is a replay', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  const { csrDer } = await cardCsr(card.card.transmit, await challenge());
  const r = await enrol(csrDer);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.type, 'application/pkcs7-mime; smime-type=certs-only');
  const der = execFileSync('openssl', ['base64', '-d'], { input: r.body });
  const printed = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: der }).toString();
  assert.match(printed, new RegExp(`subject=CN\\s*=\\s*${card.uidHex}`, 'i'), printed);
  const chain = readCertsOnly(decodeBase64Body(r.body));
  assert.equal(chain.length, 2, 'the certificate, then the issuing CA');
  assert.deepEqual(Buffer.from(chain[1]!), Buffer.from(bench.svc.operator.ca.certDer));
  const certs = await certificates(card);
  assert.equal(certs.length, 1);

  const again = await enrol(csrDer);
  refusedWith(again, 403, 'ERR_OP_NONCE_REPLAY');
  assert.equal((await certificates(card)).length, 1, 'nothing more issued');
});

test('a counterfeit card (same UID, attestation key certified by another CA) is refused: ERR_OP_ATTESTATION_CHAIN', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const genuine = await TestCard.create(m);
  await bench.importCards([genuine]);
  const fake = await TestCard.create({ ...m, ca: await makeCa('counterfeiter') }, genuine.uid);
  const { csrDer } = await cardCsr(fake.card.transmit, await challenge());
  refusedWith(await enrol(csrDer), 403, 'ERR_OP_ATTESTATION_CHAIN');
  assert.deepEqual(await certificates(genuine), []);
});

test('a software key: openssl req with a stolen challenge, no evidence and no enrolment credential → 401 ERR_OP_EST_CREDENTIAL', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const stolen = await challenge();
  const cnf = join(bench.dir, `req-${++n}.cnf`);
  writeFileSync(cnf, `[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = thief\n[attrs]\nchallengePassword = ${stolen}\n`);
  const key = join(bench.dir, `key-${n}.pem`);
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  const csrDer = execFileSync('openssl', ['req', '-new', '-key', key, '-config', cnf, '-outform', 'DER']);
  refusedWith(await enrol(new Uint8Array(csrDer)), 401, 'ERR_OP_EST_CREDENTIAL');
  // the stolen challenge was not used up by the refusal: the genuine card still enrols with it
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  const ok = await enrol((await cardCsr(card.card.transmit, stolen)).csrDer);
  assert.equal(ok.status, 200, ok.body);
});

test('a challenge with a forged MAC, none at all, or an attestation over another nonce: each its own code', async (t) => {
  if (!requirePeer(t, 'curl')) return;
  const card = await TestCard.create(m);
  await bench.importCards([card]);
  const good = await challenge();
  const parts = good.split('.');
  const forged = [parts[0], parts[1], parts[2], 'A'.repeat(21) + (parts[3]![21] === 'A' ? 'Q' : 'A')].join('.');
  refusedWith(await enrol((await cardCsr(card.card.transmit, forged)).csrDer), 403, 'ERR_OP_EST_CHALLENGE_FORGED');

  // the card attests over a nonce of its own choosing while quoting the operator's challenge text
  const c = new AdminClient(card.card.transmit);
  await c.select();
  await c.callPlain(AdminRequest.generateIdentityKey({ slot: 7, algorithm: KeyAlg.p256 }));
  const other = parseFunctionResponse(Fn.createCsr, await c.callPlain(AdminRequest.createCsr({ slot: 7, nonce: randomBytes(32), challenge: good, evidence: true })));
  refusedWith(await enrol(req(other, Field.csr, 'csr')), 403, 'ERR_OP_NONCE_UNKNOWN');
  // no challengePassword at all
  const bare = parseFunctionResponse(Fn.createCsr, await c.callPlain(AdminRequest.createCsr({ slot: 7, nonce: challengeNonce(good), evidence: true })));
  refusedWith(await enrol(req(bare, Field.csr, 'csr')), 400, 'ERR_OP_EST_CHALLENGE_INVALID');
  assert.deepEqual(await certificates(card), []);
  // wrong media type
  const wrong = await curl('/.well-known/est/simpleenroll', ['-H', 'Content-Type: text/plain', '--data-binary', 'x']);
  refusedWith(wrong, 415, 'ERR_OP_UNSUPPORTED_MEDIA_TYPE');
});
