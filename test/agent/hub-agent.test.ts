/**
 * The relay hub and the device agent over real HTTPS (port 0, a test CA) with a card-like fake that
 * records every APDU: scripts on the agent's own channel, sessions kept open across scripts, the
 * status values, card removal, resume after an agent restart, an operator restart, authentication,
 * logs without APDU bytes, and the long-poll wake-up latency (measured and printed, not asserted).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { DeviceAgent, type DeviceAgentOptions } from '../../src/agent/index.js';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { ISD_AID } from '../../src/relay/index.js';
import type { RelayHubOptions } from '../../src/operator/relay/index.js';
import { FakeCard } from './fake-card.js';
import { makePki, percentile, startOperator, type TestOperator, type TestPki } from './operator-fixture.js';
import { waitUntil, within } from '../wait.js';

let pki: TestPki;
before(async () => {
  pki = await makePki();
});

const h = (s: string): Uint8Array => fromHex(s);
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();
/** An echo command (case 3): the fake security domain answers its data and 9000. */
const ECHO = (data: string): Uint8Array => h(`80500000${(data.length / 2).toString(16).padStart(2, '0')}${data}`);
/** `p` with a handler attached now (it may reject before the test awaits it). */
const early = <T>(p: Promise<T>): Promise<T> => {
  p.catch(() => undefined);
  return p;
};

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function operator(opts: Partial<RelayHubOptions> & { port?: number; tokens?: Map<string, string> } = {}): Promise<TestOperator & { log: string[] }> {
  const log: string[] = [];
  const op = await startOperator(pki, { log: (l) => log.push(l), ...opts });
  cleanups.push(() => op.close());
  return Object.assign(op, { log });
}

async function agentFor(op: { url: string }, cards: FakeCard[] | ReturnType<FakeCard['transport']>[], extra: Partial<DeviceAgentOptions> = {}): Promise<DeviceAgent & { lines: string[] }> {
  const lines: string[] = [];
  const a = await DeviceAgent.start({
    operatorUrl: op.url,
    ca: pki.caPem,
    token: 'agent-token-1',
    hostId: 'host-1',
    cards: cards.map((c) => ({ transport: c instanceof FakeCard ? c.transport() : c })),
    log: (l) => lines.push(l),
    backoffInitialMs: 50,
    backoffMaxMs: 400,
    ...extra,
  });
  cleanups.push(() => a.stop());
  return Object.assign(a, { lines });
}

test("a script runs on a channel of the agent's own, opened from its home channel; channel 0 is touched once, at start", async () => {
  const op = await operator();
  const card = new FakeCard();
  const agent = await agentFor(op, [card]);
  const r = await op.hub.runScript(card.uid, ISD_AID, [ECHO('0102030405'), h('80CADF5000')], { timeoutMs: 20_000 });
  assert.equal(r.status, 'ok');
  assert.equal(r.hostId, 'host-1');
  assert.equal(r.deliveries, 1);
  assert.deepEqual(r.rapdus.map(hex), ['01020304059000', 'DF5010' + hex(card.uid) + '9000']);
  await waitUntil(() => card.openChannels.length === 2, () => `the script channel closes (open: ${card.openChannels})`);
  // (the in-process transport carries extended lengths, so the agent's own commands use them)
  // channel 0: the home channel's MANAGE CHANNEL only
  assert.deepEqual(card.on(0).map(hex), ['00700000000001']);
  // home channel 1: SELECT ISD, GET DATA DF50 (UID), MANAGE CHANNEL open of the script channel
  assert.deepEqual(card.on(1).map(hex), ['01A40400000008A0000001510000000100', '81CADF50000100', '01700000000001']);
  // script channel 2: SELECT of the target, the script as sent with CLA moved to channel 2, MANAGE CHANNEL close
  assert.deepEqual(card.on(2).map(hex), ['02A40400000008A0000001510000000100', '82500000050102030405', '82CADF5000', '02708002']);
  assert.deepEqual(card.openChannels, [0, 1]);
  const host = op.hub.hosts().find((x) => x.hostId === 'host-1')!;
  assert.deepEqual(host.cards, [hex(card.uid)]);
  assert.equal(host.heartbeat.agent, 'setls-agent/1');
  await agent.stop();
  assert.deepEqual(card.openChannels, [0], 'the agent closes its home channel when it stops');
});

test('keepOpen + continue: the second script runs on the same channel (no MANAGE CHANNEL between); then the session ends and the channel closes', async () => {
  const op = await operator();
  const card = new FakeCard();
  await agentFor(op, [card]);
  const r1 = await op.hub.runScript(card.uid, ISD_AID, [ECHO('AA')], { timeoutMs: 20_000, keepOpen: true });
  assert.equal(r1.status, 'ok');
  const n = card.log.length;
  const r2 = await op.hub.runScript(card.uid, ISD_AID, [ECHO('BB')], { timeoutMs: 20_000, continue: true });
  assert.deepEqual(r2.rapdus.map(hex), ['BB9000']);
  const between = card.log.slice(n).map((l) => hex(l.apdu));
  assert.deepEqual(between, ['8250000001BB'], 'only the script: same channel 2, no new channel, no SELECT');
  await waitUntil(() => card.openChannels.length === 2, 'the channel closes at the end of the session');
  await assert.rejects(op.hub.runScript(card.uid, ISD_AID, [ECHO('CC')], { timeoutMs: 5_000, continue: true }), { code: 'ERR_RELAY_SESSION_LOST' });
});

test('a kept channel that nobody continues is closed after sessionHoldMs (204); a late continue gets ERR_RELAY_SESSION_LOST', async () => {
  const op = await operator({ sessionHoldMs: 200 });
  const card = new FakeCard();
  await agentFor(op, [card]);
  await op.hub.runScript(card.uid, ISD_AID, [ECHO('AA')], { timeoutMs: 20_000, keepOpen: true });
  await waitUntil(() => card.openChannels.length === 2, 'the held channel closes');
  await assert.rejects(op.hub.runScript(card.uid, ISD_AID, [ECHO('BB')], { timeoutMs: 5_000, continue: true }), { code: 'ERR_RELAY_SESSION_LOST' });
});

test('status values: unknown application, script format error (nothing sent), no free channel', async () => {
  const op = await operator();
  const card = new FakeCard({ channels: 3 });
  await agentFor(op, [card]);
  const unknown = await op.hub.runScript(card.uid, h('A0000001510000FF'), [ECHO('01')], { timeoutMs: 20_000 });
  assert.deepEqual([unknown.status, unknown.rapdus.length], ['unknown-application', 0]);
  const before = card.log.length;
  const select = await op.hub.runScript(card.uid, ISD_AID, [h('00A4040008A000000151000000')], { timeoutMs: 20_000 });
  assert.deepEqual([select.status, select.rapdus.length], ['script-format-error', 0]);
  const manage = await op.hub.runScript(card.uid, ISD_AID, [h('0070800000')], { timeoutMs: 20_000 });
  assert.equal(manage.status, 'script-format-error');
  assert.equal(card.log.length, before, 'a refused script sends nothing to the card');
  // take the last free channel away: MANAGE CHANNEL from the home channel answers 6A81
  card.forceOpen(2);
  const busy = await op.hub.runScript(card.uid, ISD_AID, [ECHO('01')], { timeoutMs: 20_000 });
  assert.deepEqual([busy.status, busy.rapdus.length], ['temporarily-unavailable-application', 0]);
});

test('card removed mid-script: unavailable-se with the R-APDUs that ran; back in the reader, the next script runs', async () => {
  const op = await operator({ pollHoldMs: 300 });
  const card = new FakeCard();
  const transport = card.transport();
  const agent = await agentFor(op, [transport]);
  const gate = card.holdNext();
  const p = early(op.hub.runScript(card.uid, ISD_AID, [ECHO('01'), h('80E4000001AA'), ECHO('02')], { timeoutMs: 20_000 }));
  await within(gate.reached, 'the held APDU reaches the card');
  transport.remove();
  gate.release();
  const r = await p;
  assert.equal(r.status, 'unavailable-se');
  assert.deepEqual(r.rapdus.map(hex), ['019000', 'AA9000']);
  // While it is out, the card is reported absent (heartbeat) and not offered (SE list).
  await waitUntil(() => op.hub.hosts()[0]?.heartbeat.cards[0]?.state === 'absent', 'the heartbeat reports the card absent');
  assert.deepEqual(op.hub.hosts()[0]!.cards, []);
  transport.reset(); // reinserted (the fake card's channels are reset)
  await waitUntil(() => op.hub.hosts()[0]?.cards.length === 1, 'the card is offered again');
  const again = await op.hub.runScript(card.uid, ISD_AID, [ECHO('03')], { timeoutMs: 20_000 });
  assert.deepEqual([again.status, again.rapdus.map(hex)], ['ok', ['039000']]);
  assert.ok(agent.lines.some((l) => /unavailable-se/.test(l)));
});

test('resume: an agent restarted mid-script gets the first script of a session again (deliveries 2)', async () => {
  const op = await operator();
  const card = new FakeCard();
  const a = await agentFor(op, [card]);
  const gate = card.holdNext();
  const p = early(op.hub.runScript(card.uid, ISD_AID, [ECHO('01'), h('80E4000001AA'), ECHO('02')], { timeoutMs: 30_000 }));
  await within(gate.reached, 'the held APDU reaches the card');
  const stopped = a.stop(); // the agent dies before answering (the APDU in the card completes)
  gate.release();
  await stopped;
  const b = await agentFor(op, [card]);
  const r = await p;
  assert.equal(r.status, 'ok');
  assert.equal(r.deliveries, 2);
  assert.deepEqual(r.rapdus.map(hex), ['019000', 'AA9000', '029000']);
  assert.ok(op.log.some((l) => /resumes/.test(l)), 'the hub saw X-Admin-Resume: true');
  assert.ok(op.log.some((l) => /re-queued/.test(l)));
  await b.stop();
});

test('resume: a script that continued a session is reported ERR_RELAY_INTERRUPTED (its SCP03 session died); so is one with redeliver: false', async () => {
  const op = await operator();
  const card = new FakeCard();
  const a = await agentFor(op, [card]);
  await op.hub.runScript(card.uid, ISD_AID, [ECHO('01')], { timeoutMs: 20_000, keepOpen: true });
  const gate = card.holdNext();
  const p = early(op.hub.runScript(card.uid, ISD_AID, [h('80E4000001AA')], { timeoutMs: 30_000, continue: true }));
  await within(gate.reached, 'the held APDU reaches the card');
  const stopped = a.stop();
  gate.release();
  await stopped;
  const b = await agentFor(op, [card]);
  await assert.rejects(p, { code: 'ERR_RELAY_INTERRUPTED' });
  await b.stop();
  // (A script queued while b's poll is still open on the hub's side would be handed to that dead
  // poll: the next poll then applies the same rule to it. Wait for the hub to see b go.)
  await waitUntil(() => op.hub.waitingPolls === 0, 'the hub saw the stopped agent go');

  const gate2 = card.holdNext();
  const p2 = early(op.hub.runScript(card.uid, ISD_AID, [h('80E4000001BB')], { timeoutMs: 30_000, redeliver: false }));
  const c = await agentFor(op, [card]);
  await within(gate2.reached, 'the held APDU reaches the card');
  const stopped2 = c.stop();
  gate2.release();
  await stopped2;
  await agentFor(op, [card]);
  await assert.rejects(p2, { code: 'ERR_RELAY_INTERRUPTED' });
});

test('operator restart: the agent backs off, reconnects and runs the next script; answers to a dead Next-URI end the dialog', async () => {
  const op1 = await operator();
  const card = new FakeCard();
  const agent = await agentFor(op1, [card], { answerRetryMs: 3_000 });
  await op1.hub.runScript(card.uid, ISD_AID, [ECHO('01')], { timeoutMs: 20_000 });
  // A script in the card when the operator dies: its answers meet the restarted operator (404).
  const gate = card.holdNext();
  const lost = early(op1.hub.runScript(card.uid, ISD_AID, [h('80E4000001AA')], { timeoutMs: 30_000 }));
  await within(gate.reached, 'the held APDU reaches the card');
  await op1.close();
  await assert.rejects(lost, { code: 'ERR_RELAY_CLOSED' });
  const op2 = await operator({ port: op1.port });
  gate.release();
  const r = await op2.hub.runScript(card.uid, ISD_AID, [ECHO('02')], { timeoutMs: 30_000 });
  assert.deepEqual(r.rapdus.map(hex), ['029000']);
  assert.ok(agent.lines.some((l) => /ERR_RELAY_NOT_FOUND/.test(l)), agent.lines.join('\n'));
  await waitUntil(() => card.openChannels.length === 2, 'no channel leaked');
});

test('authentication: an unknown token or a token of another host is refused; nothing is delivered; the agent backs off', async () => {
  const op = await operator({ tokens: new Map([['agent-token-1', 'host-1'], ['token-2', 'host-2']]) });
  const card = new FakeCard();
  const wrong = await agentFor(op, [card], { token: 'nope' });
  await assert.rejects(op.hub.runScript(card.uid, ISD_AID, [ECHO('01')], { timeoutMs: 1_500 }), { code: 'ERR_RELAY_TIMEOUT' });
  await waitUntil(() => wrong.stats.pollErrors >= 2, 'the agent retried');
  assert.ok(wrong.lines.some((l) => /ERR_RELAY_UNAUTHORIZED/.test(l)));
  await wrong.stop();
  const card2 = new FakeCard({ uid: h('00112233445566778899AABBCCDDEEFF') });
  const other = await agentFor(op, [card2], { token: 'token-2' }); // claims host-1 with host-2's token
  await waitUntil(() => other.lines.some((l) => /ERR_RELAY_FORBIDDEN/.test(l)), 'refused as another host');
  assert.equal(card.on(2).length + card2.on(2).length, 0, 'no script reached a card');
});

test('a script for a card no agent reaches times out; the queue per card is bounded', async () => {
  const op = await operator({ maxQueuedPerCard: 2 });
  const uid = h('0102030405060708');
  const a = early(op.hub.runScript(uid, ISD_AID, [ECHO('01')], { timeoutMs: 300 }));
  const b = early(op.hub.runScript(uid, ISD_AID, [ECHO('01')], { timeoutMs: 300 }));
  await assert.rejects(op.hub.runScript(uid, ISD_AID, [ECHO('01')], { timeoutMs: 300 }), { code: 'ERR_RELAY_QUEUE_FULL' });
  await assert.rejects(a, { code: 'ERR_RELAY_TIMEOUT' });
  await assert.rejects(b, { code: 'ERR_RELAY_TIMEOUT' });
  await assert.rejects(op.hub.runScript(uid, ISD_AID, [h('80CA')], { timeoutMs: 300 }), { code: 'ERR_RELAY_ARGUMENT' });
  await assert.rejects(op.hub.runScript(uid.subarray(0, 3), ISD_AID, [ECHO('01')], { timeoutMs: 300 }), { code: 'ERR_RELAY_ARGUMENT' });
});

test('two cards behind one agent: each script reaches its own card', async () => {
  const op = await operator();
  const c1 = new FakeCard({ uid: h('11111111111111111111111111111111') });
  const c2 = new FakeCard({ uid: h('22222222222222222222222222222222') });
  await agentFor(op, [c1, c2]);
  const [r1, r2] = await Promise.all([
    op.hub.runScript(c1.uid, ISD_AID, [h('80CADF5000')], { timeoutMs: 20_000 }),
    op.hub.runScript(c2.uid, ISD_AID, [h('80CADF5000')], { timeoutMs: 20_000 }),
  ]);
  assert.equal(hex(r1.rapdus[0]!), 'DF5010' + hex(c1.uid) + '9000');
  assert.equal(hex(r2.rapdus[0]!), 'DF5010' + hex(c2.uid) + '9000');
});

test('the agent log holds lengths, status words and timing only: no PIN, key or certificate bytes', async () => {
  const op = await operator();
  const card = new FakeCard();
  const agent = await agentFor(op, [card]);
  const pin = '31323334'; // "1234"
  const key = hex(Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff));
  const cert = hex(Uint8Array.from({ length: 200 }, (_, i) => (i * 91 + 7) & 0xff));
  const r = await op.hub.runScript(card.uid, ISD_AID, [h(`8020000004${pin}`), h(`80E2000020${key}`), h(`80DA0000C8${cert}`), h('80E2030000')], { timeoutMs: 20_000 });
  assert.equal(r.status, 'ok');
  assert.equal(r.rapdus.length, 4);
  const text = [...agent.lines, ...op.log].join('\n');
  const windows = (s: string): string[] => Array.from({ length: Math.max(1, s.length / 2 - 3) }, (_, i) => s.slice(2 * i, 2 * i + 8));
  for (const secret of [pin, key, cert]) {
    for (const w of windows(secret)) {
      assert.ok(!text.toUpperCase().includes(w), `the logs hold ${w} of a secret`);
      assert.ok(!text.includes(Buffer.from(w, 'hex').toString('base64').slice(0, 4) + Buffer.from(w, 'hex').toString('base64').slice(4)), 'nor in base64');
    }
  }
  assert.ok(agent.lines.some((l) => /4\/4 APDUs/.test(l) && /SW 9000 9000 9000 9000/.test(l)), agent.lines.join('\n'));
});

test('long-poll wake-up latency on loopback (measured, printed; no timing assertion)', async () => {
  const op = await operator();
  const card = new FakeCard();
  const agent = await agentFor(op, [card]);
  const wake: number[] = [];
  const arrive: number[] = [];
  const total: number[] = [];
  const N = 100;
  for (let i = 0; i < N; i++) {
    await waitUntil(() => op.hub.waitingPolls === 1, 'the agent is long-polling', 30_000, 1);
    const t0 = performance.now();
    const delivered = once(op.hub, 'delivered');
    const received = once(agent, 'received');
    const p = op.hub.runScript(card.uid, ISD_AID, [ECHO('01')], { timeoutMs: 20_000 });
    await delivered;
    wake.push(performance.now() - t0);
    await received;
    arrive.push(performance.now() - t0);
    await p;
    total.push(performance.now() - t0);
  }
  for (const l of [wake, arrive, total]) l.sort((a, b) => a - b);
  const f = (x: number): string => x.toFixed(2);
  console.log(`# long-poll wake-up (runScript → script handed to the waiting poll), ${N} runs: p50 ${f(percentile(wake, 50))} ms, p99 ${f(percentile(wake, 99))} ms`);
  console.log(`# long-poll wake-up (runScript → script received by the agent over HTTPS), ${N} runs: p50 ${f(percentile(arrive, 50))} ms, p99 ${f(percentile(arrive, 99))} ms`);
  console.log(`# one-APDU script round trip (runScript → R-APDUs back, channel open/SELECT/close included): p50 ${f(percentile(total, 50))} ms, p99 ${f(percentile(total, 99))} ms`);
  assert.equal(total.length, N);
});
