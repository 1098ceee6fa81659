/**
 * What the device host, relaying the admin APDUs, cannot do (design §2.2, §8.7): replay a recorded
 * session (same power cycle or after a reset), alter any relayed command (10⁴ single-bit and
 * single-byte mutations), drop, duplicate or reorder commands, or hide a response from the operator.
 * Each refused command must leave the card's state exactly as it was (persistent state compared).
 * Every test runs on the ISD applet alone ('fake') and through the real EmulatedCard ('card': its
 * card OS with 61xx and logical channels, the real platform and sealed store; a reset is the power
 * cycle). The tests are registered by security.test.ts (all but the mutations) and
 * security-mutations[-card].test.ts (the 10⁴ mutations, one file per card kind): three files, three
 * time budgets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { concat, equalBytes, fromHex, toHex } from '../../../src/bytes/index.js';
import { AdminClient, AdminRequest, ISD_AID, KeyAlg } from '../../../src/gp/admin/index.js';
import { Scp03Host } from '../../../src/gp/host.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { buildPutKey } from '../../../src/gp/put-key.js';
import { TLS_AID } from './fake-platform.js';
import { CARD_KINDS, cardFromSnapshot, type CardKind, type IsdTestCard } from './cards.js';
import { adminSession, operatorKeys, sealedTestCard, sw } from './helpers.js';

const SELECT = concat(fromHex('00A4040008'), ISD_AID, fromHex('00'));
const TRIALS = Number(process.env.ISD_TRIALS ?? 10_000);

/** A deterministic PRNG (mulberry32): the same mutations on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Recorded {
  /** The snapshot the script starts from. */
  readonly start: Uint8Array;
  /** The wire commands (IU first) and the card's answers. */
  readonly commands: readonly Uint8Array[];
  readonly answers: readonly Uint8Array[];
  /** The persistent state after each command. */
  readonly after: readonly Uint8Array[];
}

const recorded = new Map<CardKind, Promise<Recorded>>();

/**
 * A recorded admin session: IU, EA, PUT KEY (add 32), SetPolicy, PutRevocationList, LockIdentity,
 * GET STATUS, GetCardInfo, SET STATUS (lock the TLS applet), GetCardInfo.
 */
function record(kind: CardKind): Promise<Recorded> {
  let r = recorded.get(kind);
  if (r) return r;
  r = (async () => {
    const { card, fx } = await sealedTestCard(kind);
    const s0 = await adminSession(card, fx.factoryKeys);
    await s0.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }));
    s0.close();
    card.powerCycle();
    const start = card.snapshot();
    card.transmit(SELECT);
    const commands: Uint8Array[] = [];
    const answers: Uint8Array[] = [];
    const after: Uint8Array[] = [];
    const transmit = (apdu: Uint8Array): Uint8Array => {
      const r = card.transmit(apdu);
      commands.push(apdu.slice());
      answers.push(r.slice());
      after.push(card.stateBytes());
      return r;
    };
    let n = 0;
    const host = new Scp03Host({ keys: fx.factoryKeys, sdAid: ISD_AID, random: (k) => createHash('sha256').update(`hc${n++}`).digest().subarray(0, k) });
    host.processInitializeUpdateResponse(transmit(host.initializeUpdate()));
    host.processExternalAuthenticateResponse(transmit(host.externalAuthenticate(0x33)));
    const plain = [
      buildPutKey(host.dek!, operatorKeys(0x32)),
      ...buildStoreData(AdminRequest.setPolicy({ slot: 1, policy: { exportAllowed: true, clientAuth: 'optional' } })),
      ...buildStoreData(AdminRequest.putRevocationList({ number: 7, serials: [fromHex('1234')] })),
      ...buildStoreData(AdminRequest.lockIdentity({ slot: 1, lock: true })),
      fromHex('80F28002024F0000'),
      ...buildStoreData(AdminRequest.getCardInfo()),
      concat(fromHex('80F04080'), Uint8Array.of(TLS_AID.length), TLS_AID),
      ...buildStoreData(AdminRequest.getCardInfo()),
    ];
    for (const p of plain) assert.equal(host.unwrap(transmit(host.wrap(p))).sw, 0x9000);
    card.dispose();
    return { start, commands, answers, after };
  })();
  recorded.set(kind, r);
  return r;
}

function freshCard(kind: CardKind, start: Uint8Array): IsdTestCard {
  const card = cardFromSnapshot(kind, start);
  card.logging = false;
  card.transmit(SELECT);
  return card;
}

/** Registers the tests of one part: the 10⁴ mutations (long) or the rest — two files, two time budgets. */
export function securityTests(part: 'mutations' | 'rest', kinds: readonly CardKind[] = CARD_KINDS): void {
for (const kind of kinds) {

if (part === 'rest') test(`${kind}: the recorded session ran: every command executed`, async () => {
  const rec = await record(kind);
  assert.equal(rec.commands.length, 10);
  for (const r of rec.answers) assert.equal(toHex(r.subarray(-2)), '9000');
});

if (part === 'rest') test(`${kind}: replay of a recorded admin session, in the same power cycle and after a reset, executes nothing`, async () => {
  const rec = await record(kind);
  const card = freshCard(kind, rec.start);
  for (const c of rec.commands) card.transmit(c); // the genuine session
  const done = card.record();
  for (const when of ['same power cycle', 'after a reset'] as const) {
    if (when === 'after a reset') card.powerCycle();
    card.transmit(SELECT);
    const before = card.record();
    const answers = rec.commands.map((c) => card.transmit(c));
    assert.equal(toHex(answers[0]!.subarray(-2)), '9000', `${when}: the IU is answered, with a new challenge`);
    assert.notEqual(toHex(answers[0]!), toHex(rec.answers[0]!));
    for (const a of answers.slice(1)) {
      assert.equal(a.length, 2, `${when}: no data, no R-MAC`);
      assert.notEqual(sw(a), 0x9000, `${when}: refused`);
    }
    const after = card.record();
    assert.equal(after.sequenceCounter, before.sequenceCounter + 1, 'only the counter moved');
    assert.equal(toHex(after.audit.head), toHex(done.audit.head), `${when}: audit log unchanged`);
    assert.equal(after.audit.seq, done.audit.seq);
    assert.deepEqual({ ...after, sequenceCounter: 0 }, { ...done, sequenceCounter: 0 }, `${when}: state unchanged`);
    assert.notEqual(card.sessionState(0), 'open');
  }
  card.dispose();
});

if (part === 'mutations') test(`${kind}: 10⁴ single-bit and single-byte mutations of relayed C-APDUs: each refused, session closed, zero state change`, async () => {
  const rec = await record(kind);
  const rnd = prng(0x5e71);
  const n = rec.commands.length;
  const seen = new Set<string>();
  for (let trial = 0; trial < TRIALS; trial++) {
    const i = 1 + Math.floor(rnd() * (n - 2)); // EA … the next-to-last command (the last one follows every mutation)
    const orig = rec.commands[i]!;
    const cmd = orig.slice();
    const pos = Math.floor(rnd() * cmd.length);
    if (rnd() < 0.5) cmd[pos] = cmd[pos]! ^ (1 << Math.floor(rnd() * 8));
    else cmd[pos] = (cmd[pos]! + 1 + Math.floor(rnd() * 255)) & 0xff;
    assert.ok(!equalBytes(cmd, orig));
    const card = freshCard(kind, rec.start);
    for (let k = 0; k < i; k++) assert.ok(equalBytes(card.transmit(rec.commands[k]!), rec.answers[k]!), `trial ${trial}: prefix ${k}`);
    const state = rec.after[i - 1]!;
    const r = card.transmit(cmd);
    const what = `trial ${trial}: command ${i} byte ${pos} ${toHex(orig.subarray(pos, pos + 1))}→${toHex(cmd.subarray(pos, pos + 1))}`;
    assert.equal(r.length, 2, `${what}: answered with data`);
    assert.notEqual(sw(r), 0x9000, `${what}: accepted`);
    seen.add(toHex(r));
    assert.ok(equalBytes(card.stateBytes(), state), `${what}: state changed`);
    for (let k = i + 1; k < n; k++) {
      const rk = card.transmit(rec.commands[k]!);
      assert.ok(rk.length === 2 && sw(rk) !== 0x9000, `${what}: command ${k} accepted after the mutation`);
    }
    assert.ok(equalBytes(card.stateBytes(), state), `${what}: state changed later`);
    assert.notEqual(card.sessionState(0), 'open', `${what}: session still open`);
    card.dispose();
  }
  // the refusals seen (documentation of the test, not a requirement): 6982 MAC, 6985 aborted, 6881 channel, …
  assert.ok(seen.has('6982'));
});

if (part === 'rest') test(`${kind}: a relayed command turned into another instruction (IU, EA, SELECT, MANAGE CHANNEL, …) changes nothing`, async () => {
  const rec = await record(kind);
  const n = rec.commands.length;
  for (let i = 1; i < n - 1; i++) {
    for (const ins of [0x50, 0x82, 0xa4, 0x70, 0xc0, 0xca, 0xd8, 0xe2, 0xf0, 0xf2]) {
      if (rec.commands[i]![1] === ins) continue;
      const card = freshCard(kind, rec.start);
      for (let k = 0; k < i; k++) card.transmit(rec.commands[k]!);
      const cmd = rec.commands[i]!.slice();
      cmd[1] = ins;
      const r = card.transmit(cmd);
      const what = `command ${i} with INS ${ins.toString(16)}`;
      assert.ok(r.length === 2 && sw(r) !== 0x9000, `${what}: accepted`);
      assert.ok(equalBytes(card.stateBytes(), rec.after[i - 1]!), `${what}: state changed (the sequence counter?)`);
      for (let k = i + 1; k < n; k++) assert.notEqual(sw(card.transmit(rec.commands[k]!)), 0x9000, `${what}: later command ${k}`);
      assert.notEqual(card.sessionState(0), 'open');
      card.dispose();
    }
  }
});

if (part === 'rest') test(`${kind}: drop, duplicate or reorder any command: refused from that point, state as before it`, async () => {
  const rec = await record(kind);
  const n = rec.commands.length;
  const run = (seq: number[], stateIndex: number, firstBad: number, what: string): void => {
    const card = freshCard(kind, rec.start);
    seq.forEach((k, j) => {
      const r = card.transmit(rec.commands[k]!);
      if (j < firstBad) assert.ok(equalBytes(r, rec.answers[k]!), `${what}: position ${j}`);
      else assert.ok(r.length === 2 && sw(r) !== 0x9000, `${what}: position ${j} (command ${k}) accepted`);
    });
    assert.ok(equalBytes(card.stateBytes(), rec.after[stateIndex]!), `${what}: state`);
    card.dispose();
  };
  const all = [...Array(n).keys()];
  for (let k = 1; k < n - 1; k++) {
    run([...all.slice(0, k), ...all.slice(k + 1)], k - 1, k, `drop ${k}`);
    run([...all.slice(0, k + 1), k, ...all.slice(k + 1)], k, k + 1, `duplicate ${k}`);
    run([...all.slice(0, k), k + 1, k, ...all.slice(k + 2)], k - 1, k, `swap ${k} and ${k + 1}`);
  }
});

if (part === 'rest') test(`${kind}: a response swallowed or forged by the relay is detected by the off-card side (R-MAC)`, async () => {
  const { card, fx } = await sealedTestCard(kind);
  const open = async (): Promise<Scp03Host> => {
    const c = new AdminClient(card.transmit);
    await c.select();
    await c.open(fx.factoryKeys);
    return c.session!;
  };
  const cmd = () => buildStoreData(AdminRequest.getCardInfo())[0]!;
  // (a) the relay drops the command and answers 9000 itself
  let h = await open();
  h.wrap(cmd());
  assert.throws(() => h.unwrap(fromHex('9000')), /ERR_GP_RESPONSE|does not verify/);
  // (b) the relay swallows the response of the first command and hands over the second's instead
  h = await open();
  const w1 = h.wrap(cmd());
  const w2 = h.wrap(cmd());
  card.transmit(w1);
  const r2 = card.transmit(w2);
  assert.throws(() => h.unwrap(r2), /ERR_GP_RESPONSE|does not verify/);
  // (c) the relay alters one byte of a genuine response
  h = await open();
  const r = card.transmit(h.wrap(cmd()));
  r[3] = r[3]! ^ 0x40;
  assert.throws(() => h.unwrap(r), /ERR_GP_RESPONSE|does not verify/);
  // (d) what SCP03 cannot stop: a bare error SW stands for any outcome; GetCardInfo tells the truth
  h = await open();
  h.wrap(buildStoreData(AdminRequest.putRevocationList({ number: 9, serials: [] }))[0]!);
  assert.equal(h.unwrap(fromHex('6a80')).sw, 0x6a80);
  card.dispose();
});

if (part === 'rest') test(`${kind}: INITIALIZE UPDATE itself is not authenticated: a changed host challenge is caught by the card cryptogram`, async () => {
  const { card, fx } = await sealedTestCard(kind);
  card.transmit(SELECT);
  const host = new Scp03Host({ keys: fx.factoryKeys, sdAid: ISD_AID });
  const iu = host.initializeUpdate();
  iu[7] = iu[7]! ^ 1;
  assert.throws(() => host.processInitializeUpdateResponse(card.transmit(iu)), /ERR_GP_CARD_CRYPTOGRAM|cryptogram/);
  card.dispose();
});
}
}
