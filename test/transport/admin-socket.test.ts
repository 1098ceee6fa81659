/**
 * The admin socket (transport/admin-socket.ts, admin-relay.ts) against an emulated card: mutual
 * authentication by the operator PIN, APDUs moved to the relay's own logical channel (channel 0 and
 * its PIN verification untouched), a clean channel per client, refusal of other channels and of
 * MANAGE CHANNEL, a silent client dropped at the deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { statSync, existsSync } from 'node:fs';
import { EmulatedCard } from '../../src/card/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { AdminSocketTransport, AdminFrame, AdminFrameDecoder } from '../../src/transport/admin-socket.js';
import { AdminRelay } from '../../src/transport/admin-relay.js';
import { CardClient } from '../../src/host/index.js';
import { OPERATOR_PIN, USER_PIN, newCard } from '../card/helpers.js';
import { makeCa } from '../card/isd/test-ca.js';
import { factoryKeySet, personalise } from '../../src/factory/index.js';
import { withGetResponse } from '../../src/cli/manufacturer.js';

async function relayed(opts: { idleTimeoutMs?: number } = {}) {
  const c = newCard();
  const transport = new InProcessTransport((apdu) => c.card.process(apdu));
  // the server's own session on channel 0: selected, user PIN verified
  const server = new CardClient(transport);
  await server.select();
  await server.verifyPin(USER_PIN, 'user');
  const socketPath = join(c.dir, 'admin.sock');
  const relay = await AdminRelay.start({ socketPath, transport, operatorPin: () => OPERATOR_PIN, ...opts });
  return {
    ...c,
    card: c.card as EmulatedCard,
    server,
    relay,
    socketPath,
    async close() {
      await relay.close();
      await transport.close();
      c.card.close();
      c.cleanup();
    },
  };
}

test('an authenticated client administers the card on the relay channel; channel 0 keeps its own state', async () => {
  const r = await relayed();
  try {
    assert.equal(statSync(r.socketPath).mode & 0o777, 0o600);
    assert.notEqual(r.relay.adminChannel, 0);
    assert.deepEqual(r.card.openChannels, [0, r.relay.adminChannel]);
    const t = await AdminSocketTransport.connect(r.socketPath, { operatorPin: OPERATOR_PIN });
    assert.equal(t.serverPid, process.pid);
    const admin = new CardClient(t);
    await admin.select();
    await assert.rejects(admin.putPolicy({ versions: [0x0304] }), { code: 'ERR_CARD_SECURITY_NOT_SATISFIED' }, 'the card still wants the operator PIN');
    await admin.verifyPin(OPERATOR_PIN, 'operator');
    await admin.putPolicy({ versions: [0x0304] });
    assert.deepEqual((await r.server.cardInfo()).policy?.versions, [0x0304], 'the served card has it');
    // channel 0 is still selected and user-verified (GET-STATE needs the user PIN: a lost
    // verification would be 6982); 01 = no identity yet on this bare card
    assert.equal(await r.server.getState(), 1);
    // another channel's CLA, or MANAGE CHANNEL, never reaches the card
    assert.deepEqual([...(await t.transmit(Uint8Array.of(0xa1, 0xca, 0x00, 0x00, 0x00)))], [0x68, 0x81]);
    assert.deepEqual([...(await t.transmit(Uint8Array.of(0x00, 0x70, 0x80, 0x00)))], [0x68, 0x81]);
    const used = r.relay.adminChannel;
    await t.close();
    // the next client gets a clean channel: the operator PIN verification went with the old one
    const t2 = await AdminSocketTransport.connect(r.socketPath, { operatorPin: OPERATOR_PIN });
    const admin2 = new CardClient(t2);
    await admin2.select();
    await assert.rejects(admin2.putPolicy({ versions: [0x0304, 0x0303] }), { code: 'ERR_CARD_SECURITY_NOT_SATISFIED' });
    assert.notEqual(r.relay.adminChannel, used);
    assert.deepEqual(r.card.openChannels, [0, r.relay.adminChannel]);
    await t2.close();
  } finally {
    await r.close();
  }
  assert.equal(existsSync(r.socketPath), false, 'the socket file goes with the relay');
});

test("the security domain through the socket: GlobalPlatform classes 80 / 84 moved to the relay channel (factory personalisation and an SCP03 session), another channel's 81 refused", async () => {
  const r = await relayed();
  try {
    const t = await AdminSocketTransport.connect(r.socketPath, { operatorPin: OPERATOR_PIN });
    const transmit = withGetResponse((a) => t.transmit(a));
    const ca = await makeCa('socket test manufacturer');
    const uid = Uint8Array.from({ length: 16 }, (_, i) => i);
    // SELECT, GET DATA (80), STORE DATA factory functions (80), SET STATUS (80), then IU (80), EA and
    // GetCardInfo under SCP03 (84): every one relayed to the admin channel
    const entry = await personalise(transmit, { uid, factoryKeys: factoryKeySet(new Uint8Array(16).fill(7), uid), manufacturerCa: async ({ csr }) => [await ca.issueFromCsr(csr), ca.cert] });
    assert.deepEqual([...entry.uid], [...uid]);
    assert.equal(r.card.securityDomain.sessionState(r.relay.adminChannel), 'open', 'the check session ran on the relay channel');
    assert.deepEqual([...(await t.transmit(Uint8Array.of(0x81, 0xca, 0x9f, 0x7f, 0x00)))], [0x68, 0x81]);
    assert.equal(await r.server.getState(), 1, 'channel 0 untouched');
    await t.close();
  } finally {
    await r.close();
  }
});

test('a client with another operator PIN is refused before any APDU; a server that does not know the PIN is not trusted either', async () => {
  const r = await relayed();
  try {
    await assert.rejects(AdminSocketTransport.connect(r.socketPath, { operatorPin: '11112222' }), { code: 'ERR_ADMIN_SOCKET_AUTH' });
    const tries = (await r.server.cardInfo()).operatorPinTries;
    assert.equal(tries, 3, 'no VERIFY reached the card');
    // a fake server on another path that answers the hello but cannot prove the PIN
    const fakePath = join(r.dir, 'fake.sock');
    const fake = net.createServer((s) => {
      const dec = new AdminFrameDecoder();
      const hello = Uint8Array.of(0, 0, 0, 39, AdminFrame.hello, 1, 1, ...new Uint8Array(32), 0, 0, 0, 1);
      s.write(hello);
      s.on('data', (d: Buffer) => {
        for (const f of dec.push(d)) if (f.type === AdminFrame.auth) s.write(Uint8Array.of(0, 0, 0, 33, AdminFrame.ok, ...new Uint8Array(32)));
      });
    });
    await new Promise<void>((res) => fake.listen(fakePath, res));
    try {
      await assert.rejects(AdminSocketTransport.connect(fakePath, { operatorPin: OPERATOR_PIN }), { code: 'ERR_ADMIN_SOCKET_AUTH' });
    } finally {
      fake.close();
    }
  } finally {
    await r.close();
  }
});

test('a client that authenticates and then goes silent is dropped at the idle deadline; the next one is served', async () => {
  const r = await relayed({ idleTimeoutMs: 300 });
  try {
    const t = await AdminSocketTransport.connect(r.socketPath, { operatorPin: OPERATOR_PIN });
    // no APDU: the relay closes the connection; the client's next transmit fails
    const closed = new Promise<void>((resolve) => {
      const poll = async (): Promise<void> => {
        try {
          await t.transmit(Uint8Array.of(0xa0, 0xca, 0x00, 0x00, 0x00));
          setTimeout(() => void poll(), 100);
        } catch {
          resolve();
        }
      };
      setTimeout(() => void poll(), 400);
    });
    await closed;
    await t.close();
    const t2 = await AdminSocketTransport.connect(r.socketPath, { operatorPin: OPERATOR_PIN });
    const c2 = new CardClient(t2);
    await c2.select();
    assert.equal((await c2.cardInfo()).userPinTries, 3);
    await t2.close();
  } finally {
    await r.close();
  }
});
