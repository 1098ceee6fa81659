/**
 * Two operator nodes on one PostgreSQL database (issue #17): two real `setls operator serve`
 * processes, each with its own copy of the operator folder (CA key, TLS certificate), sharing the
 * store through `--store postgres://…`, behind a TCP front (the load balancer: the first node that
 * accepts). Node A claims the enrolment jobs of two real cards (the security domain on its fake
 * platform, reached through a device agent); it is SIGKILLed while both jobs are in flight, after the
 * certificates were issued and before the cards installed them. Node B takes both jobs over once
 * their leases expire and finishes them; nothing ran twice: one certificate per card, and the
 * cards' own audit logs hold one PUT KEY, one key generation, one certificate installation and one
 * activation each. Server: SETLS_TEST_PG_URL (test/operator/pg-helpers.ts).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { toHex } from '../../src/bytes/index.js';
import { parseAuditEntry } from '../../src/gp/admin/audit.js';
import { SlotStatus } from '../../src/gp/admin/constants.js';
import { AuditEvent, Fn } from '../../src/protocol/isd.js';
import { DeviceAgent } from '../../src/agent/index.js';
import { initOperator } from '../../src/operator/init.js';
import { writeSecretFile } from '../../src/operator/keys/secret-files.js';
import { makeManufacturing, TestCard, TRANSPORT_ID, type Manufacturing } from './isd-fixture.js';
import { call, tempDir } from './helpers.js';
import { createTempDb, pgUnavailable } from './pg-helpers.js';
import pg from 'pg';
import { skipOrFail } from '../ci.js';
import { waitUntil, within } from '../wait.js';
import { BIN, freePort, operatorServing, serveOperator, type OperatorNode } from './processes.js';

const LEASE_MS = 1500;
let m: Manufacturing;
before(async () => {
  m = await makeManufacturing();
});

/** A wrapped STORE DATA (the operator's functions) on an admin channel. */
const isStoreData = (a: Uint8Array): boolean => a[1] === 0xe2 && a[0] !== 0x80;

/** Holds the n-th wrapped STORE DATA at the card until released. */
function gate(card: TestCard, nth: number): { reached: Promise<void>; release: (r: Uint8Array) => void } {
  let seen = 0;
  let reached!: () => void;
  let release!: (r: Uint8Array) => void;
  const r = new Promise<void>((res) => (reached = res));
  const held = new Promise<Uint8Array>((res) => (release = res));
  card.filter = async (apdu, next) => {
    if (isStoreData(apdu) && ++seen === nth) {
      reached();
      return held;
    }
    return next(apdu);
  };
  return { reached: r, release };
}


/** The load balancer: each connection goes to the first back end that accepts it (TLS passes through). */
async function front(backends: () => number[]): Promise<{ port: number; server: Server; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const tryNext = (ports: number[]): void => {
      const p = ports[0];
      if (p === undefined) {
        client.destroy();
        return;
      }
      const up = connect({ port: p, host: '127.0.0.1' });
      up.once('error', () => tryNext(ports.slice(1)));
      up.once('connect', () => {
        up.removeAllListeners('error');
        sockets.add(up);
        up.on('close', () => sockets.delete(up));
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    tryNext(backends());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** What the card's own audit log says happened: event code (and function tag) → count. */
function auditCounts(card: TestCard): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of card.platform.record().audit.entries) {
    const e = parseAuditEntry(raw);
    const key = e.event === AuditEvent.functionExecuted ? `fn:${toHex(e.detail.subarray(0, 2))}` : `ev:${e.event}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

const fnKey = (f: number): string => `fn:${f.toString(16).padStart(4, '0')}`;

test('two operator nodes on one PostgreSQL: SIGKILL the node holding the jobs → the other finishes them after the lease; nothing runs twice (the cards\' audit logs)', async (t) => {
  if (!skipOrFail(t, await pgUnavailable())) return;
  const db = await createTempDb();
  const tmp = tempDir('setls-nodes-');
  const dirA = join(tmp.dir, 'node-a');
  const dirB = join(tmp.dir, 'node-b');
  const nodes: OperatorNode[] = [];
  const agents: DeviceAgent[] = [];
  let lb: Awaited<ReturnType<typeof front>> | undefined;
  const gates: ReturnType<typeof gate>[] = [];
  try {
    const init = await initOperator({ dir: dirA, store: db.url, manufacturerCaPems: [m.caPem] });
    const stored = new URL(JSON.parse(readFileSync(join(dirA, 'operator.json'), 'utf8')).store);
    assert.deepEqual([stored.password, stored.pathname], ['', new URL(db.url).pathname], 'operator.json names the database, without the password');
    writeSecretFile(join(dirA, 'keys', `transport-${TRANSPORT_ID}.key`), toHex(m.transportMaster) + '\n');
    cpSync(dirA, dirB, { recursive: true }); // node B: the same keys and certificates, its own folder
    // The store URL from the environment (operator.json keeps it without its password).
    const agentToken = (host: string): string => {
      const tok = spawnSync(process.execPath, [BIN, 'operator', 'agent-token', '--dir', dirB, '--host', host], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, SETLS_OPERATOR_STORE: db.url },
      });
      assert.equal(tok.status, 0, tok.stderr);
      return tok.stdout.trim();
    };
    const caFile = join(dirA, 'tls-ca.crt');

    const a = serveOperator(dirA, await freePort(), ['--store', db.url, '--job-lease', String(LEASE_MS)]);
    nodes.push(a);
    await operatorServing(a, caFile);
    let b: OperatorNode | undefined;
    lb = await front(() => [a.port, ...(b ? [b.port] : [])]);
    const url = `https://localhost:${lb.port}`;
    const api = (method: string, path: string, body?: unknown) => call(url, caFile, method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}) });

    const cards = [await TestCard.create(m), await TestCard.create(m)];
    assert.equal((await api('POST', '/v1/manifests', { cards: cards.map((c) => c.manifestEntry()) })).status, 201);
    // Fresh card: [IU] then [EA, GetCardInfo, PUT KEY, Generate, Attest, CSR]; the 5th STORE DATA
    // opens script 2 (install the issued certificate): held, so node A dies holding both jobs.
    for (const c of cards) gates.push(gate(c, 5));
    // One device host per card (an agent runs one card's script at a time).
    for (const [i, c] of cards.entries()) {
      agents.push(
        await DeviceAgent.start({
          operatorUrl: url,
          ca: readFileSync(caFile, 'utf8'),
          token: agentToken(`dev-n${i}`),
          hostId: `dev-n${i}`,
          cards: [{ transport: c.transport }],
          backoffInitialMs: 50,
          backoffMaxMs: 300,
        }),
      );
    }
    const jobs = [];
    for (const c of cards) jobs.push((await api('POST', `/v1/cards/${c.uidHex}/enrol`, {})).json().job);
    for (const [i, g] of gates.entries()) await within(g.reached, `card ${i}: node A's script reaches the held command`, 60_000);
    for (const c of cards) {
      await waitUntil(async () => (await api('GET', `/v1/cards/${c.uidHex}`)).json().certificates.length === 1, 'the certificate is issued by node A');
    }
    // Node B starts while A holds both jobs under a live lease; then A dies.
    b = serveOperator(dirB, await freePort(), ['--store', db.url, '--job-lease', String(LEASE_MS)]);
    nodes.push(b);
    await operatorServing(b, caFile);
    a.child.kill('SIGKILL');
    assert.equal(await within(a.exited, 'node A dies'), null);
    for (const g of gates) g.release(Uint8Array.of(0x6f, 0x00)); // the held commands never reach the cards

    const done: any[] = [];
    for (const [i, j] of jobs.entries()) {
      let last: any;
      await waitUntil(async () => {
        last = (await api('GET', `/v1/jobs/${j.id}`)).json().job;
        return ['succeeded', 'failed', 'timed_out'].includes(last.status);
      }, () => `job ${i} ends on node B (${JSON.stringify(last)})`, 120_000);
      done.push(last);
    }
    for (const [i, d] of done.entries()) {
      assert.equal(d.status, 'succeeded', `job ${i}: ${JSON.stringify(d)}\n${b.stderr.slice(-3000)}`);
      assert.equal(d.attempt, 2, 'taken over once, after the lease');
      assert.ok(b.stderr.includes(jobs[i].id) && /job finished/.test(b.stderr), 'node B finished it');
    }
    for (const [i, c] of cards.entries()) {
      const v = (await api('GET', `/v1/cards/${c.uidHex}`)).json();
      assert.equal(v.certificates.length, 1, `card ${i}: exactly one certificate`);
      assert.equal(v.certificates[0].jobId, jobs[i].id);
      assert.equal(v.state, 'active');
      assert.equal(c.platform.record().slots.length, 1, 'one key in the card, no orphan');
      assert.equal(c.platform.record().slots[0]!.status, SlotStatus.active);
      const counts = auditCounts(c);
      assert.equal(counts.get(`ev:${AuditEvent.putKey}`), 1, `card ${i}: one PUT KEY (${JSON.stringify([...counts])})`);
      assert.equal(counts.get(fnKey(Fn.generateIdentityKey)), 1, `card ${i}: one key generation`);
      assert.equal(counts.get(fnKey(Fn.installCertificateChain)), 1, `card ${i}: one certificate installation`);
      assert.equal(counts.get(fnKey(Fn.activateIdentity)), 1, `card ${i}: one activation`);
    }
  } finally {
    for (const g of gates) g.release(Uint8Array.of(0x6f, 0x00));
    for (const a of agents) await a.stop();
    for (const n of nodes) {
      n.child.kill('SIGKILL');
      await n.exited;
    }
    await lb?.close();
    await db.drop();
    tmp.cleanup();
  }
});

test('two operator nodes, the agents polling node A only: jobs created through node B run on node A (B leaves them: its relay cannot reach those agents), first attempt each', async (t) => {
  if (!skipOrFail(t, await pgUnavailable())) return;
  const db = await createTempDb();
  const tmp = tempDir('setls-route-');
  const dirA = join(tmp.dir, 'node-a');
  const dirB = join(tmp.dir, 'node-b');
  const nodes: OperatorNode[] = [];
  const agents: DeviceAgent[] = [];
  const sql = new pg.Client({ connectionString: db.url });
  let stopped: OperatorNode | undefined;
  try {
    const init = await initOperator({ dir: dirA, store: db.url, manufacturerCaPems: [m.caPem] });
    writeSecretFile(join(dirA, 'keys', `transport-${TRANSPORT_ID}.key`), toHex(m.transportMaster) + '\n');
    cpSync(dirA, dirB, { recursive: true });
    const caFile = join(dirA, 'tls-ca.crt');
    const a = serveOperator(dirA, await freePort(), ['--store', db.url, '--job-lease', String(LEASE_MS)]);
    const b = serveOperator(dirB, await freePort(), ['--store', db.url, '--job-lease', String(LEASE_MS)]);
    nodes.push(a, b);
    await operatorServing(a, caFile);
    await operatorServing(b, caFile);
    const apiB = (method: string, path: string, body?: unknown) =>
      call(`https://localhost:${b.port}`, caFile, method, path, { token: init.adminToken, ...(body !== undefined ? { body } : {}) });
    const cards = [await TestCard.create(m), await TestCard.create(m)];
    assert.equal((await apiB('POST', '/v1/manifests', { cards: cards.map((c) => c.manifestEntry()) })).status, 201);
    for (const [i, c] of cards.entries()) {
      const tok = spawnSync(process.execPath, [BIN, 'operator', 'agent-token', '--dir', dirB, '--host', `dev-r${i}`], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, SETLS_OPERATOR_STORE: db.url },
      });
      assert.equal(tok.status, 0, tok.stderr);
      agents.push(
        await DeviceAgent.start({
          operatorUrl: `https://localhost:${a.port}`,
          ca: readFileSync(caFile, 'utf8'),
          token: tok.stdout.trim(),
          hostId: `dev-r${i}`,
          cards: [{ transport: c.transport }],
          backoffInitialMs: 50,
          backoffMaxMs: 300,
        }),
      );
    }
    // Both hosts and both cards are known to poll node A.
    await sql.connect();
    await waitUntil(async () => {
      const r = await sql.query(`SELECT count(*)::int AS n FROM card c JOIN host h ON h.id = c.host_id WHERE h.node_id IS NOT NULL`);
      return r.rows[0].n === 2;
    }, 'both cards attached to node A through their agents', 60_000);
    // Node A pauses: without routing node B would claim the jobs now (and wait in vain for agents
    // that never poll it, until the script deadline, then retry).
    a.child.kill('SIGSTOP');
    stopped = a;
    const jobs = [];
    for (const c of cards) jobs.push((await apiB('POST', `/v1/cards/${c.uidHex}/enrol`, {})).json().job);
    // node B's runner polls every second: a few of its rounds go by, and the jobs stay queued
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      for (const j of jobs) assert.equal((await apiB('GET', `/v1/jobs/${j.id}`)).json().job.status, 'queued', `node B left job ${j.id} alone`);
      await new Promise((r) => setTimeout(r, 250));
    }
    a.child.kill('SIGCONT');
    stopped = undefined;
    for (const [i, j] of jobs.entries()) {
      let last: any;
      await waitUntil(async () => {
        last = (await apiB('GET', `/v1/jobs/${j.id}`)).json().job;
        return ['succeeded', 'failed', 'timed_out'].includes(last.status);
      }, () => `job ${i} ends (${JSON.stringify(last)})`, 120_000);
      assert.equal(last.status, 'succeeded', `job ${i}: ${JSON.stringify(last)}\n${a.stderr.slice(-2000)}`);
      assert.equal(last.attempt, 1, 'first attempt: never claimed by the node the agent does not poll');
      assert.ok(a.stderr.includes(j.id), 'node A ran it');
      const touched = b.stderr.split('\n').filter((l) => l.includes(j.id) && !l.includes('"msg":"request"'));
      assert.deepEqual(touched, [], 'node B never touched it');
    }
  } finally {
    if (stopped) stopped.child.kill('SIGCONT');
    await sql.end().catch(() => undefined);
    for (const ag of agents) await ag.stop();
    for (const n of nodes) {
      n.child.kill('SIGKILL');
      await n.exited;
    }
    await db.drop();
    tmp.cleanup();
  }
});

test('setls operator init --store postgres://…: operator.json names the database without the password, later commands find it (password from PGPASSWORD), a second init on that database is refused', async (t) => {
  if (!skipOrFail(t, await pgUnavailable())) return;
  const db = await createTempDb();
  const tmp = tempDir('setls-pginit-');
  try {
    const password = decodeURIComponent(new URL(db.url).password);
    const bare = new URL(db.url);
    bare.password = '';
    const env = { ...process.env, SETLS_OPERATOR_STORE: '' };
    const cli = (args: string[], extra: Record<string, string> = {}) =>
      spawnSync(process.execPath, [BIN, 'operator', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...env, ...extra } });
    const dir = join(tmp.dir, 'op');
    const init = cli(['init', '--dir', dir, '--store', db.url]);
    assert.equal(init.status, 0, init.stderr);
    assert.match(init.stdout, /store: +postgres:\/\//);
    assert.ok(!init.stdout.includes(`:${password}@`), 'the password is not printed');
    const config = JSON.parse(readFileSync(join(dir, 'operator.json'), 'utf8'));
    assert.equal(new URL(config.store).password, '');
    const tok = cli(['token', '--dir', dir, '--role', 'viewer'], { PGPASSWORD: password });
    assert.equal(tok.status, 0, tok.stderr);
    assert.match(tok.stdout.trim(), /^sop_/, 'a token made through the PostgreSQL store');
    const again = cli(['init', '--dir', join(tmp.dir, 'other'), '--store', db.url]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already holds an operator/);
  } finally {
    await db.drop();
    tmp.cleanup();
  }
});
