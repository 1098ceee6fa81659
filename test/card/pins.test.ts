/** PIN, operator PIN and PUK: counters, blocking, persistence, unblocking, counter-before-compare. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concat, findTlv, parseTlvs } from '../../src/bytes/index.js';
import { EmulatedCard, type WriteStep } from '../../src/card/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState } from '../../src/card/state.js';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OPERATOR_PIN, PUK, SELECT, USER_PIN, cmd, newCard, pad, send, swOf, tempDir, verify } from './helpers.js';

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
    // distinct wrong PUKs: each is a new guess (the same value again is not charged twice, see below)
    for (let left = 9; left >= 1; left--) assert.equal(swOf(card, unblock('1111', `9999999${left}`, 1)), 0x63c0 | left);
    assert.equal(swOf(card, unblock('1111', '99999990', 1)), 0x6983);
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
    for (const [step, pin] of [['beforeTmpWrite', USER_PIN], ['afterTmpWrite', '2468']] as const) {
      failAt = step;
      // neither the right PIN nor a wrong one gets an answer: the comparison never ran
      assert.equal(swOf(card, verify(pin)), 0x6f00);
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

/** The user PIN tries in a sealed file (the test knows the master key). */
function userTriesIn(file: string, masterKey: Uint8Array): number {
  const scratch = tempDir();
  try {
    mkdirSync(scratch.dir, { recursive: true });
    copyFileSync(file, join(scratch.dir, 'state.sealed'));
    const store = new SealedStore(scratch.dir, masterKey);
    try {
      return deserializeState(store.read()).pins.user.tries;
    } finally {
      store.close();
    }
  } finally {
    scratch.cleanup();
  }
}

/**
 * One start of a card process that dies (the write throws; `close()` then stands for the dead
 * process letting go of the folder) when `dies(triesBeingWritten, step)` says so: the hook reads the
 * user PIN counter of the state being written from the tmp file, or from the state file after the rename.
 */
function crashingStart(dir: string, masterKey: Uint8Array, dies: (tries: number, step: WriteStep) => boolean): EmulatedCard {
  return EmulatedCard.open({
    dir,
    masterKey,
    storeHooks: {
      onWriteStep: (step) => {
        if (step === 'beforeTmpWrite') return;
        const file = join(dir, step === 'afterTmpWrite' ? 'state.sealed.tmp' : 'state.sealed');
        const tries = userTriesIn(file, masterKey);
        if (dies(tries, step)) throw new Error(`crash at ${step}, writing ${tries} tries`);
      },
    },
  });
}

const persistedTries = (dir: string, masterKey: Uint8Array): number => userTriesIn(join(dir, 'state.sealed'), masterKey);

test('starts that die right after the start-up VERIFY counter write, with the right PIN: the next start succeeds, tries back to 3', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  card.close();
  try {
    const seen: number[] = [];
    for (let start = 1; start <= 3; start++) {
      // dies as soon as a lowered counter is on disk (before the comparison's result is recorded)
      const c = crashingStart(dir, masterKey, (tries, step) => step === 'afterRename' && tries < 3);
      send(c, SELECT);
      const sw = swOf(c, verify(USER_PIN));
      c.close();
      seen.push(persistedTries(dir, masterKey));
      if (start === 1) assert.equal(sw, 0x6f00, 'the first start dies after its counter write');
    }
    // start 1 dies after its charge; start 2 resolves that pending attempt (no new charge) and
    // restores the counter; start 3 is charged again and dies: the counter never goes below 2
    assert.deepEqual(seen, [2, 3, 2]);
    const c = EmulatedCard.open({ dir, masterKey });
    send(c, SELECT);
    assert.equal(swOf(c, verify(USER_PIN)), 0x9000);
    assert.equal(triesOf(c, 0x04), 3);
    c.close();
  } finally {
    cleanup();
  }
});

test('three starts whose second VERIFY write (the counter restore) is torn, with the right PIN: the fourth start succeeds, tries back to 3', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  card.close();
  try {
    for (let start = 1; start <= 3; start++) {
      // the restore (3 tries) never reaches the state file: torn before its rename
      const c = crashingStart(dir, masterKey, (tries, step) => step === 'afterTmpWrite' && tries === 3);
      send(c, SELECT);
      assert.equal(swOf(c, verify(USER_PIN)), 0x6f00, `start ${start}`);
      assert.match(c.lastError!.message, /crash at afterTmpWrite, writing 3 tries/);
      c.close();
      assert.equal(persistedTries(dir, masterKey), 2, `start ${start}: charged once in all`);
    }
    const c = EmulatedCard.open({ dir, masterKey });
    send(c, SELECT);
    assert.equal(swOf(c, verify(USER_PIN)), 0x9000);
    assert.equal(triesOf(c, 0x04), 3);
    c.close();
    assert.equal(persistedTries(dir, masterKey), 3);
  } finally {
    cleanup();
  }
});

test('a right PIN whose charge took the counter to 0 still succeeds when presented again after the crash; any other value is blocked', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify('1111')), 0x63c2);
    assert.equal(swOf(card, verify('2222')), 0x63c1);
    card.close();
    const crashed = crashingStart(dir, masterKey, (tries, step) => step === 'afterTmpWrite' && tries === 3);
    send(crashed, SELECT);
    assert.equal(swOf(crashed, verify(USER_PIN)), 0x6f00);
    crashed.close();
    assert.equal(persistedTries(dir, masterKey), 0);
    const again = EmulatedCard.open({ dir, masterKey });
    send(again, SELECT);
    assert.equal(swOf(again, status()), 0x6983);
    assert.equal(swOf(again, verify('3333')), 0x6983, 'a new guess at 0 tries is refused');
    again.close();
    const last = EmulatedCard.open({ dir, masterKey });
    send(last, SELECT);
    // '3333' did not replace the pending attempt (it was refused before any charge)
    assert.equal(swOf(last, verify(USER_PIN)), 0x9000);
    assert.equal(triesOf(last, 0x04), 3);
    last.close();
  } finally {
    cleanup();
  }
});

test('wrong PINs across crashes: each new value is charged, alternating values get no free guess, nothing is refunded', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  card.close();
  try {
    // each start presents a wrong PIN and dies right after its (only) write, the counter write
    const starts = [
      ['1111', 2],
      ['2222', 1],
      ['1111', 0], // charged before, but '2222' replaced the pending attempt: a new charge
    ] as const;
    for (const [pin, left] of starts) {
      const c = crashingStart(dir, masterKey, (_tries, step) => step === 'afterRename');
      send(c, SELECT);
      assert.equal(swOf(c, verify(pin)), 0x6f00, `${pin}: dies after its counter write`);
      c.close();
      assert.equal(persistedTries(dir, masterKey), left, pin);
    }
    const c = EmulatedCard.open({ dir, masterKey });
    send(c, SELECT);
    assert.equal(swOf(c, verify(USER_PIN)), 0x6983, 'blocked: the right PIN no longer helps');
    // the pending wrong value is resolved as wrong (it was charged already), and stays blocked
    assert.equal(swOf(c, verify('1111')), 0x6983);
    c.close();
    assert.equal(persistedTries(dir, masterKey), 0);
  } finally {
    cleanup();
  }
});

test('the same wrong value presented twice in a row is charged once; a different one is charged', () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify('5555')), 0x63c2);
    assert.equal(swOf(card, verify('5555')), 0x63c2);
    assert.equal(swOf(card, verify('6666')), 0x63c1);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(triesOf(card, 0x04), 3);
  } finally {
    card.close();
    cleanup();
  }
});
