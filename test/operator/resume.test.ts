/**
 * Crashes on either side of an enrolment, against the real security domain:
 *  - the operator (`setls operator serve`, a real process) is SIGKILLed after it issued the
 *    certificate but before the card got it, and again before it could verify the card's answers;
 *    restarted on the same folder and port, it finishes the job exactly once: one certificate, the
 *    one active in the card, no orphan;
 *  - the device agent "reboots" in the middle of a script (the old one never answers again, a new
 *    one polls with X-Admin-Resume): the job re-reads the card and completes within the same attempt.
 * Also the serve wiring: agent tokens made by `setls operator agent-token` (hashed in the store),
 * refused when wrong, and heartbeats recording which host reaches the card.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../src/bytes/index.js';
import { SlotStatus } from '../../src/gp/admin/constants.js';
import { DeviceAgent } from '../../src/agent/index.js';
import { initOperator } from '../../src/operator/init.js';
import { writeSecretFile } from '../../src/operator/keys/secret-files.js';
import { makeBench, makeManufacturing, TestCard, TRANSPORT_ID, type Manufacturing } from './isd-fixture.js';
import { call, tempDir } from './helpers.js';
import { waitUntil, within } from '../wait.js';
import { raw } from '../agent/operator-fixture.js';
import { BIN, freePort, operatorServing, serveOperator } from './processes.js';

let m: Manufacturing;
before(async () => {
  m = await makeManufacturing();
});

/** A wrapped STORE DATA (the operator's functions) on an admin channel. */
const isStoreData = (a: Uint8Array): boolean => a[1] === 0xe2 && a[0] !== 0x80;

/** Holds the n-th wrapped STORE DATA at the card until released (with an answer, or an error). */
function gate(card: TestCard, nth: number): { reached: Promise<void>; release: (r: Uint8Array | Error) => void } {
  let seen = 0;
  let reached!: () => void;
  let release!: (r: Uint8Array | Error) => void;
  const r = new Promise<void>((res) => (reached = res));
  const held = new Promise<Uint8Array | Error>((res) => (release = res));
  card.filter = async (apdu, next) => {
    if (isStoreData(apdu) && ++seen === nth) {
      reached();
      const out = await held;
      if (out instanceof Error) throw out;
      return out;
    }
    return next(apdu);
  };
  return { reached: r, release };
}

async function killOperatorMidEnrolment(nth: number, label: string): Promise<void> {
  const t = tempDir('setls-kill-');
  const dir = join(t.dir, 'op');
  const init = await initOperator({ dir, manufacturerCaPems: [m.caPem] });
  writeSecretFile(join(dir, 'keys', `transport-${TRANSPORT_ID}.key`), toHex(m.transportMaster) + '\n');
  const tok = spawnSync(process.execPath, [BIN, 'operator', 'agent-token', '--dir', dir, '--host', 'dev-k'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(tok.status, 0, tok.stderr);
  const token = tok.stdout.trim();
  assert.match(token, /^sat_[A-Za-z0-9_-]{43}$/);
  assert.ok(!readFileSync(join(dir, 'operator.db')).includes(Buffer.from(token)), 'the agent token is not in the database');
  const port = await freePort();
  const url = `https://localhost:${port}`;
  const caFile = join(dir, 'tls-ca.crt');
  const api = (method: string, path: string, body?: unknown) => call(url, caFile, method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}) });
  const serve = () => serveOperator(dir, port, ['--job-lease', '1500']);
  let op = serve();
  let agent: DeviceAgent | undefined;
  try {
    await operatorServing(op, caFile);
    const card = await TestCard.create(m);
    assert.equal((await api('POST', '/v1/manifests', { cards: [card.manifestEntry()] })).status, 201);
    const g = gate(card, nth);
    agent = await DeviceAgent.start({ operatorUrl: url, ca: readFileSync(caFile, 'utf8'), token, hostId: 'dev-k', cards: [{ transport: card.transport }], backoffInitialMs: 50, backoffMaxMs: 300 });
    const job = (await api('POST', `/v1/cards/${card.uidHex}/enrol`, {})).json().job;
    await within(g.reached, `${label}: the script reaches the gated command`);
    if (nth === 5) await waitUntil(async () => (await api('GET', `/v1/cards/${card.uidHex}`)).json().certificates.length === 1, 'the certificate is issued');
    op.child.kill('SIGKILL');
    assert.equal(await within(op.exited, 'the operator dies'), null);
    // The command in flight never reaches the card (the agent sees an error status word and moves on).
    g.release(Uint8Array.of(0x6f, 0x00));
    op = serve();
    await operatorServing(op, caFile);
    let done: any;
    await waitUntil(async () => {
      done = (await api('GET', `/v1/jobs/${job.id}`)).json().job;
      return ['succeeded', 'failed', 'timed_out'].includes(done.status);
    }, () => `${label}: the job ends after the restart (${JSON.stringify(done)})`, 120_000);
    assert.equal(done.status, 'succeeded', `${label}: ${JSON.stringify(done)}\n${op.stderr.slice(-3000)}`);
    assert.equal(done.attempt, 2, 'taken over by the restarted operator');
    const v = (await api('GET', `/v1/cards/${card.uidHex}`)).json();
    assert.equal(v.certificates.length, 1, `${label}: exactly one certificate issued`);
    assert.equal(v.certificates[0].status, 'good');
    assert.equal(v.certificates[0].jobId, job.id);
    assert.equal(v.state, 'active');
    assert.equal(v.kvn, '31');
    const active = card.platform.record().slots.filter((s) => s.status === SlotStatus.active);
    assert.equal(active.length, 1, 'one active identity in the card');
    assert.equal(card.platform.record().slots.length, 1, 'no stray key left in another slot');
    const served0 = card.platform.tls().identities[active[0]!.slot]!.chain[0]!;
    const cert = (await api('GET', `/v1/certificates/${v.certificates[0].serial}`)).json().certificate;
    assert.equal(Buffer.from(served0, 'hex').toString('base64'), cert.pem.replace(/-----[^-]+-----|\s/g, ''), 'the card serves the one certificate issued');
    assert.equal(v.hostId, 'dev-k', 'heartbeats record the host that reaches the card');
    assert.ok(v.lastSeenAt);
    // A wrong agent token is refused (401), whatever host it claims.
    const bad = await raw({ port }, { caPem: readFileSync(caFile, 'utf8') } as never, 'POST', '/admin/v1/poll', {
      'x-admin-protocol': 'setls-remote-admin/1',
      'x-admin-from': '//host/dev-k',
      'x-admin-se-list': '',
      authorization: 'Bearer sat_' + 'A'.repeat(43),
      'content-type': 'application/json',
    }, '{"heartbeat":{"agent":"x","uptimeS":0,"cards":[]}}');
    assert.equal(bad.status, 401);
  } finally {
    await agent?.stop();
    op.child.kill('SIGKILL');
    await op.exited;
    t.cleanup();
  }
}

test('SIGKILL the operator after it issued the certificate, before the card installed it: the restarted operator installs that one — exactly once, no orphan', async () => {
  // Fresh card: [IU] then [EA, GetCardInfo, PUT KEY, Generate, Attest, CSR]; the 5th STORE DATA opens script 2.
  await killOperatorMidEnrolment(5, 'after issuance');
});

test('SIGKILL the operator while the card runs CreateCSR: the restarted operator finds the key it generated and the key set it gave, attests again, issues once', async () => {
  await killOperatorMidEnrolment(4, 'before issuance');
});

test('the agent reboots mid-script: the interrupted script is re-planned from the card, the job completes in the same attempt', async () => {
  const bench = await makeBench(m);
  let first: DeviceAgent | undefined;
  const card = await TestCard.create(m);
  const g = gate(card, 5);
  try {
    await bench.importCards([card]);
    const token = await bench.agentToken('dev-r');
    first = await DeviceAgent.start({ operatorUrl: bench.url, ca: bench.tlsCaPem, token, hostId: 'dev-r', cards: [{ transport: card.transport }] });
    const job = await bench.job(card.uidHex, 'enrol');
    await within(g.reached, 'script 2 reaches the card');
    // The first agent is gone for good (its APDU never returns); the device's new agent process polls.
    await bench.startAgent([card], 'dev-r', undefined, [card.newTransport()]);
    const done = await bench.wait(job.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.attempt, 1, 'resumed within the attempt');
    const v = (await bench.api('GET', `/v1/cards/${card.uidHex}`)).json();
    assert.equal(v.certificates.length, 1);
    assert.equal(card.platform.record().slots.filter((s) => s.status === SlotStatus.active).length, 1);
  } finally {
    g.release(Object.assign(new Error('card removed'), { code: 'ERR_TRANSPORT_CLOSED' }));
    await first?.stop();
    await bench.close();
  }
});

void existsSync;
void writeFileSync;
