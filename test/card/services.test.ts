/**
 * The card services an applet receives, and the store transactions under them: several changes in
 * one transaction are one atomic write (all or nothing, in memory and on disk, with the follow-ups —
 * wiping, session resets — only after the commit); a failed write rolls the card's state in memory
 * back; a PIN charge is kept even when its write fails; the operator-side service calls a security
 * domain needs (generate a key, install a chain, set the floor, reset a PIN).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SW } from '../../src/apdu/index.js';
import { EmulatedCard, type Applet, type CardServices } from '../../src/card/index.js';
import { padPin } from '../../src/card/pins.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState } from '../../src/card/state.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, cmd, newCard, send, swOf, utf8, verify } from './helpers.js';

/** A card whose extra applet hands the test the card's services (and is never selected). */
function cardWithServices(failAt?: { step?: string }): { card: EmulatedCard; services: CardServices; dir: string; masterKey: Uint8Array; cleanup: () => void } {
  let services: CardServices | undefined;
  const probe = (s: CardServices): Applet => {
    services = s;
    return {
      aid: Uint8Array.of(0xa0, 0, 0, 9, 0x99, 0x7e),
      name: 'probe',
      table: { classes: ['gp'], commands: [] },
      select: () => ({ data: new Uint8Array(0), sw: SW.ok }),
      deselect: () => undefined,
      reset: () => undefined,
    };
  };
  const made = newCard({
    applets: [probe],
    storeHooks: {
      onWriteStep: (step) => {
        if (failAt?.step === step) throw new Error(`power cut at ${step}`);
      },
    },
  });
  return { ...made, services: services! };
}

function diskState(dir: string, masterKey: Uint8Array) {
  const store = new SealedStore(dir, masterKey);
  try {
    return deserializeState(store.read());
  } finally {
    store.close();
  }
}

test('one transaction, several services: one write, all or nothing; follow-ups run only after the commit', () => {
  const failAt: { step?: string } = {};
  const { card, services: s, dir, masterKey, cleanup } = cardWithServices(failAt);
  try {
    let writes = 0;
    s.store.onWritten(() => writes++);
    // configuration-change follow-ups (session resets, cache clear): when, and whether inside the transaction
    const changes: boolean[] = [];
    s.config.onChanged(() => changes.push(s.store.inTransaction));
    const before = { identities: s.identities.all.length, floor: s.time.floor, puk: s.pins.tries('puk') };

    // a failing write: nothing of it in memory (nor on disk), no follow-up ran
    failAt.step = 'afterTmpWrite';
    assert.throws(
      () =>
        s.store.transaction(() => {
          s.identities.generateKey('sd-slot-1', 'p256');
          s.time.setFloor(1_900_000_000);
          s.pins.reset('puk', padPin('99887766'));
        }),
      /power cut at afterTmpWrite/,
    );
    failAt.step = undefined;
    assert.deepEqual({ identities: s.identities.all.length, floor: s.time.floor, puk: s.pins.tries('puk') }, before);
    assert.equal(diskState(dir, masterKey).identities.length, 0);
    assert.equal(writes, 0);
    assert.deepEqual(changes, []);

    // the same, committed: one write; the DTLS session was reset to a TLS one by the change
    const spki = s.store.transaction(() => {
      const k = s.identities.generateKey('sd-slot-1', 'p256');
      s.time.setFloor(1_900_000_000);
      s.pins.reset('puk', padPin('99887766'));
      assert.equal(s.identities.all.length, 1, 'later steps see the draft');
      return k;
    });
    assert.equal(writes, 1);
    assert.deepEqual(changes, [false], 'one change announced, after the commit');
    assert.equal(spki[0], 0x30);
    const disk = diskState(dir, masterKey);
    assert.deepEqual([disk.identities.map((i) => i.label), disk.lastTime], [['sd-slot-1'], 1_900_000_000]);
    // the new PUK unblocks
    send(card, SELECT);
    const unblock = cmd(0xa0, 0x2c, 0x00, 0x00, new Uint8Array([...padPin('2468'), ...padPin('99887766')]));
    assert.equal(swOf(card, unblock), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});

test('a throw inside a transaction writes nothing and changes nothing', () => {
  const { card, services: s, dir, masterKey, cleanup } = cardWithServices();
  try {
    assert.throws(() =>
      s.store.transaction(() => {
        s.identities.generateKey('a', 'p256');
        throw new Error('the applet changed its mind');
      }),
    );
    assert.equal(s.identities.all.length, 0);
    assert.equal(diskState(dir, masterKey).identities.length, 0);
  } finally {
    card.close();
    cleanup();
  }
});

test('operator services: install a chain, reset a blocked PIN (no value: tries restored), PSKs', async () => {
  const { card, services: s, cleanup } = cardWithServices();
  try {
    const spki = s.identities.generateKey('web', 'p256');
    const ca = await TestCa.create();
    const leaf = await ca.issue(spki, 'web.example', ['web.example']);
    s.identities.installChain('web', [leaf]);
    assert.deepEqual(s.identities.find('web').hostNames, ['web.example']);
    assert.throws(() => s.identities.installChain('web', [new Uint8Array(ca.cert.rawData)]), { code: 'ERR_CARD_DATA' });
    // block the user PIN, then an operator reset restores its tries (value unchanged)
    send(card, SELECT);
    for (const wrong of ['0000', '0001', '0002']) send(card, verify(wrong)); // three new values (one repeated is not charged twice)
    assert.equal(swOf(card, verify(USER_PIN)), 0x6983);
    s.pins.reset('user');
    assert.equal(s.pins.tries('user'), 3);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.throws(() => s.pins.reset('operator', utf8('12')), { code: 'ERR_CARD_DATA' });
    // a PSK added then deleted
    s.config.putPsk({ identity: utf8('client-1'), key: new Uint8Array(32).fill(7), hash: 'sha256' });
    assert.equal(s.config.psks.length, 1);
    s.config.deletePsk(utf8('client-1'));
    assert.equal(s.config.psks.length, 0);
    assert.throws(() => s.config.deletePsk(utf8('client-1')), { code: 'ERR_CARD_NOT_FOUND' });
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});

test('a PIN charge is kept in memory when its write fails; a failed transaction is rolled back', () => {
  const failAt: { step?: string } = {};
  const { card, services: s, cleanup } = cardWithServices(failAt);
  try {
    send(card, SELECT);
    failAt.step = 'beforeTmpWrite';
    assert.equal(swOf(card, verify('0000')), 0x6f00);
    assert.equal(s.pins.tries('user'), 2, 'the charge stays');
    assert.throws(() => s.pins.reset('user'));
    assert.equal(s.pins.tries('user'), 2, 'the reset was rolled back');
    failAt.step = undefined;
    s.pins.reset('user');
    assert.equal(s.pins.tries('user'), 3);
    assert.throws(() => s.store.transaction(() => s.store.charge(() => undefined)), { code: 'ERR_CARD_INTERNAL' });
  } finally {
    card.close();
    cleanup();
  }
});
