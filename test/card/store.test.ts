/** The sealed store: create/open, wrong key, corruption, torn writes, leftover tmp files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { concat, findTlv, parseTlvs } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { OPERATOR_PIN, PUK, SELECT, USER_PIN, cmd, newCard, pad, send, swOf, tempDir, verify, utf8 } from './helpers.js';

test('create refuses to overwrite; open restores serial and state; wrong key or corrupt file → ERR_CARD_STATE', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    send(card, SELECT);
    const info1 = parseTlvs(send(card, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data);
    assert.equal(findTlv(info1, 0x02)!.length, 8);
    card.close();
    assert.throws(() => EmulatedCard.create({ dir, masterKey, userPin: USER_PIN, operatorPin: OPERATOR_PIN, puk: PUK }), { code: 'ERR_CARD_EXISTS' });
    const again = EmulatedCard.open({ dir, masterKey });
    send(again, SELECT);
    const info2 = parseTlvs(send(again, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data);
    assert.deepEqual(findTlv(info2, 0x02), findTlv(info1, 0x02));
    again.close();
    assert.equal(statSync(join(dir, 'state.sealed')).mode & 0o077, 0);

    const wrong = new Uint8Array(randomBytes(32));
    assert.throws(() => EmulatedCard.open({ dir, masterKey: wrong }), (e: Error & { code?: string }) => e.code === 'ERR_CARD_STATE' && /wrong master key or corrupt/.test(e.message));
    assert.throws(() => EmulatedCard.open({ dir, masterKey: new Uint8Array(16) }), { code: 'ERR_CARD_MASTER_KEY' });
    const sealed = readFileSync(join(dir, 'state.sealed'));
    sealed[sealed.length - 20]! ^= 1;
    writeFileSync(join(dir, 'state.sealed'), sealed);
    assert.throws(() => EmulatedCard.open({ dir, masterKey }), { code: 'ERR_CARD_STATE' });
    writeFileSync(join(dir, 'state.sealed'), 'hello');
    assert.throws(() => EmulatedCard.open({ dir, masterKey }), { code: 'ERR_CARD_STATE' });
    const empty = tempDir();
    assert.throws(() => EmulatedCard.open({ dir: empty.dir, masterKey }), { code: 'ERR_CARD_STATE' });
    empty.cleanup();
  } finally {
    cleanup();
  }
});

test('the sealed file holds no plaintext (no PIN, no label, no key type names)', () => {
  const { card, dir, cleanup } = newCard();
  try {
    send(card, SELECT);
    send(card, verify(OPERATOR_PIN, 1));
    assert.equal(send(card, cmd(0xa0, 0x46, 0x01, 0x00, utf8('very-visible-label'), 256)).sw, 0x9000);
    const raw = readFileSync(join(dir, 'state.sealed')).toString('latin1');
    for (const s of ['very-visible-label', 'pkcs8', 'p256', 'lastTime']) assert.ok(!raw.includes(s), s);
    card.close();
  } finally {
    cleanup();
  }
});

for (const step of ['afterTmpWrite', 'afterRename'] as const) {
  test(`torn write at ${step}: the card loads the ${step === 'afterRename' ? 'new' : 'old'} state, never a broken one`, () => {
    let armed = false;
    let writes = 0;
    const { card, dir, masterKey, cleanup } = newCard({
      storeHooks: {
        onWriteStep: (s) => {
          if (!armed) return;
          if (s === 'beforeTmpWrite') writes++;
          if (writes === 3 && s === step) throw new Error('power cut');
        },
      },
    });
    try {
      send(card, SELECT);
      // CHANGE-PIN writes three times (counter down, counter restored, new PIN): cut the last write
      armed = true;
      assert.equal(swOf(card, cmd(0xa0, 0x24, 0x00, 0x00, concat(pad(USER_PIN), pad('13571357')))), 0x6f00);
      assert.equal(writes, 3);
      assert.equal(existsSync(join(dir, 'state.sealed.tmp')), step === 'afterTmpWrite');
      card.close();
      const again = EmulatedCard.open({ dir, masterKey });
      assert.equal(existsSync(join(dir, 'state.sealed.tmp')), false); // leftover removed
      send(again, SELECT);
      if (step === 'afterRename') {
        assert.equal(swOf(again, verify('13571357')), 0x9000);
      } else {
        assert.equal(swOf(again, verify(USER_PIN)), 0x9000);
      }
      again.close();
    } finally {
      cleanup();
    }
  });
}

test('a leftover tmp file (even garbage) is ignored and removed on open', () => {
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    card.close();
    writeFileSync(join(dir, 'state.sealed.tmp'), randomBytes(100));
    const again = EmulatedCard.open({ dir, masterKey });
    assert.equal(existsSync(join(dir, 'state.sealed.tmp')), false);
    send(again, SELECT);
    assert.equal(swOf(again, verify(USER_PIN)), 0x9000);
    again.close();
  } finally {
    cleanup();
  }
});

test('close() makes the card refuse commands', () => {
  const { card, cleanup } = newCard();
  try {
    card.close();
    assert.equal(swOf(card, SELECT), 0x6985);
    assert.equal(card.lastError?.code, 'ERR_CARD_CLOSED');
  } finally {
    cleanup();
  }
});
