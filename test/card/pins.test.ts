/** PIN, operator PIN and PUK: counters, blocking, persistence, unblocking, counter-before-compare. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, findTlv, parseTlvs } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { OPERATOR_PIN, PUK, SELECT, USER_PIN, cmd, newCard, pad, send, swOf, verify } from './helpers.js';

const status = (ref = 0) => cmd(0xa0, 0x20, 0x00, ref);
const change = (oldPin: string, newPin: string, ref = 0) => cmd(0xa0, 0x24, 0x00, ref, concat(pad(oldPin), pad(newPin)));
const unblock = (newPin: string, puk: string, ref = 0) => cmd(0xa0, 0x2c, 0x00, ref, concat(pad(newPin), pad(puk)));
const triesOf = (card: EmulatedCard, tag: number) => findTlv(parseTlvs(send(card, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data), tag)![0];

test('wrong PIN: 63C2, 63C1, then 6983; blocked after reopen; PUK unblocks; wrong PUK decrements its own counter', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, status()), 0x63c3);
    assert.equal(swOf(card, verify('9999')), 0x63c2);
    assert.equal(swOf(card, verify('99999999')), 0x63c1);
    assert.equal(swOf(card, verify('0000')), 0x6983);
    assert.equal(swOf(card, verify(USER_PIN)), 0x6983); // the right PIN no longer helps
    assert.equal(swOf(card, status()), 0x6983);
    assert.equal(triesOf(card, 0x04), 0);
    card.close();

    const again = EmulatedCard.open({ dir, masterKey });
    send(again, SELECT);
    assert.equal(swOf(again, verify(USER_PIN)), 0x6983);
    assert.equal(swOf(again, unblock('5678', '00000000')), 0x63c9);
    assert.equal(triesOf(again, 0x06), 9);
    again.close();
    const third = EmulatedCard.open({ dir, masterKey });
    send(third, SELECT);
    assert.equal(triesOf(third, 0x06), 9); // the PUK counter persisted too
    assert.equal(swOf(third, unblock('5678', PUK)), 0x9000);
    assert.equal(triesOf(third, 0x06), 10);
    assert.equal(triesOf(third, 0x04), 3);
    assert.equal(swOf(third, verify(USER_PIN)), 0x63c2); // old PIN replaced
    assert.equal(swOf(third, verify('5678')), 0x9000);
    assert.equal(triesOf(third, 0x04), 3); // a right PIN restores the counter
    third.close();
  } finally {
    cleanup();
  }
});

test('PUK blocks after 10 wrong tries; the operator PIN has its own counter', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify('0000', 1)), 0x63c2);
    assert.equal(triesOf(card, 0x05), 2);
    assert.equal(triesOf(card, 0x04), 3);
    for (let left = 9; left >= 1; left--) assert.equal(swOf(card, unblock('1111', '99999999', 1)), 0x63c0 | left);
    assert.equal(swOf(card, unblock('1111', '99999999', 1)), 0x6983);
    assert.equal(swOf(card, unblock('1111', PUK, 1)), 0x6983);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});

test('verification is lost on reset(); a wrong VERIFY also drops it; Lc=0 VERIFY reports status', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, status()), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x9000);
    card.reset();
    assert.equal(swOf(card, status()), 0x6985); // not selected after reset
    send(card, SELECT);
    assert.equal(swOf(card, status()), 0x63c3);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x6982);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, verify('1111')), 0x63c2);
    assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x6982);
  } finally {
    card.close();
    cleanup();
  }
});

test('PIN format: 4–8 digits padded with FF, else 6A80 without spending a try', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    for (const bad of [pad('123'), Uint8Array.of(0x31, 0x32, 0x33, 0x34, 0x00, 0xff, 0xff, 0xff), Uint8Array.of(0x31, 0x32, 0x33, 0x34, 0xff, 0x35, 0xff, 0xff), pad('12a4')]) {
      assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00, bad)), 0x6a80);
    }
    assert.equal(swOf(card, status()), 0x63c3);
    assert.throws(() => newCard({ userPin: '12' }), { code: 'ERR_CARD_PIN_FORMAT' });
  } finally {
    card.close();
    cleanup();
  }
});

test('CHANGE-PIN: wrong old PIN costs a try, right one sets the new PIN (persisted)', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, change('0000', '24682468')), 0x63c2);
    assert.equal(swOf(card, change(USER_PIN, '24682468')), 0x9000);
    assert.equal(swOf(card, status()), 0x9000);
    card.close();
    const again = EmulatedCard.open({ dir, masterKey });
    send(again, SELECT);
    assert.equal(swOf(again, verify(USER_PIN)), 0x63c2);
    assert.equal(swOf(again, verify('24682468')), 0x9000);
    again.close();
  } finally {
    cleanup();
  }
});

test('counter before compare: a store failure during the counter write gives 6F00, no comparison, no refund', () => {
  let failAt: string | undefined;
  const { card, dir, masterKey, cleanup } = newCard({
    storeHooks: {
      onWriteStep: (step) => {
        if (step === failAt) throw new Error(`simulated power cut at ${step}`);
      },
    },
  });
  try {
    send(card, SELECT);
    for (const step of ['beforeTmpWrite', 'afterTmpWrite']) {
      failAt = step;
      // even the right PIN is not accepted: the comparison never ran
      assert.equal(swOf(card, verify(USER_PIN)), 0x6f00);
      assert.equal(card.lastError?.message, `simulated power cut at ${step}`);
      failAt = undefined;
      assert.equal(swOf(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)), 0x6982);
    }
    // the two tries are not refunded in the running card
    assert.equal(swOf(card, status()), 0x63c1);
    // a wrong PIN with a failing write does not reveal the comparison either
    failAt = 'beforeTmpWrite';
    assert.equal(swOf(card, verify('0000')), 0x6f00);
    failAt = undefined;
    assert.equal(swOf(card, status()), 0x6983);
    // the card stays usable
    assert.equal(swOf(card, SELECT), 0x9000);
    assert.equal(swOf(card, unblock(USER_PIN, PUK)), 0x9000);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    card.close();
    const again = EmulatedCard.open({ dir, masterKey });
    send(again, SELECT);
    assert.equal(swOf(again, status()), 0x63c3);
    again.close();
  } finally {
    cleanup();
  }
});
