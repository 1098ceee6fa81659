/**
 * The card OS with an applet of the test's own (registered through EmulatedCardOpenOptions.applets):
 * SELECT routing by AID (unknown → 6A82; a refusing applet keeps the selection), the class byte
 * decoded to a channel and handed over raw (GlobalPlatform 80–87/C0–CF, E0–EF read by the selected
 * applet), the command table's checks in their order, P1-More chaining and GET RESPONSE as OS
 * services, MANAGE CHANNEL selecting the same applet on a new channel, reset semantics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SW } from '../../src/apdu/index.js';
import { atrName } from '../../src/protocol/index.js';
import { CardError } from '../../src/card/errors.js';
import { EmulatedCard, type Applet, type AppletCommand, type ChannelContext, type CommandSpec, type Reply } from '../../src/card/index.js';
import { SELECT, USER_PIN, cmd, newCard, pad, send, swOf, tempDir, verify } from './helpers.js';

const TEST_AID = Uint8Array.of(0xa0, 0x00, 0x00, 0x09, 0x99, 0x01);
const LOCKED_AID = Uint8Array.of(0xa0, 0x00, 0x00, 0x09, 0x99, 0x02);
const EMPTY = new Uint8Array(0);

/** What the test applet saw. */
interface Seen {
  readonly ins: number;
  readonly cla: number;
  readonly kind: string | undefined;
  readonly channel: number;
  readonly data: number[];
  readonly raw: number[];
}

class TestApplet implements Applet {
  readonly aid = TEST_AID;
  readonly name = 'test';
  readonly seen: Seen[] = [];
  readonly events: string[] = [];
  readonly table;

  constructor() {
    const spec = (ins: number, access: CommandSpec['access'], handler: CommandSpec['handler'], chaining?: 'p1-more'): CommandSpec => ({
      ins,
      cla: 'gp',
      name: `TEST-${ins.toString(16)}`,
      access,
      p1p2: (p1, p2) => (p1 & ~1) === 0 && p2 === 0,
      handler,
      ...(chaining ? { chaining } : {}),
    });
    const record = (c: AppletCommand, data: Uint8Array, ch: ChannelContext): void => {
      this.seen.push({ ins: c.ins, cla: c.cla, kind: c.cls?.kind, channel: ch.number, data: [...data], raw: [...c.raw] });
    };
    this.table = {
      classes: ['iso', 'gp'] as const,
      commands: [
        // echo: answers its (reassembled) data; P1 bit 0 More
        spec(0x10, 'none', (c, data, ch) => (record(c, data, ch), { data: data.slice(), sw: SW.ok }), 'p1-more'),
        // needs the user PIN verified on the channel
        spec(0x20, 'user', (c, data, ch) => (record(c, data, ch), { data: EMPTY, sw: SW.ok })),
        // a custom rule: refused with 6982 unless P1 = 00 and the data is "ok"
        spec(
          0x30,
          (c) => {
            if (c.data.length !== 2 || c.data[0] !== 0x6f) throw new CardError('ERR_CARD_SECURITY', 'custom rule', SW.securityNotSatisfied);
          },
          (c, data, ch) => (record(c, data, ch), { data: EMPTY, sw: SW.ok }),
        ),
        // a long answer: 600 bytes
        spec(0x40, 'none', () => ({ data: new Uint8Array(600).map((_, i) => i & 0xff), sw: SW.ok })),
      ],
    };
  }

  select(ch: ChannelContext, p2: number): Reply {
    this.events.push(`select ${ch.number} ${p2}`);
    return { data: p2 === 0x0c ? EMPTY : Uint8Array.of(0x6f, 0x00), sw: SW.ok };
  }
  deselect(ch: ChannelContext): void {
    this.events.push(`deselect ${ch.number}`);
  }
  reset(ch: ChannelContext): void {
    this.events.push(`reset ${ch.number}`);
  }
}

/** An applet that refuses selection (a locked application). */
const locked: Applet = {
  aid: LOCKED_AID,
  name: 'locked',
  table: { classes: ['gp'], commands: [] },
  select: () => {
    throw new CardError('ERR_CARD_LOCKED_APPLET', 'locked', 0x6283);
  },
  deselect: () => undefined,
  reset: () => undefined,
};

function withCard(fn: (card: ReturnType<typeof newCard>['card'], applet: TestApplet) => void): void {
  const applet = new TestApplet();
  const { card, cleanup } = newCard({ applets: [() => applet, () => locked] });
  try {
    fn(card, applet);
  } finally {
    card.close();
    cleanup();
  }
}

const selectAid = (aid: Uint8Array, cla = 0x00, p2 = 0x00): Uint8Array => cmd(cla, 0xa4, 0x04, p2, aid, 256);

test('SELECT routes by AID; an unknown AID is 6A82 and a refusing applet keeps the selection', () => {
  withCard((card, applet) => {
    let r = send(card, selectAid(TEST_AID));
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [0x6f, 0x00]]);
    assert.equal(swOf(card, selectAid(Uint8Array.of(1, 2, 3, 4, 5, 6, 7))), 0x6a82);
    assert.equal(swOf(card, selectAid(LOCKED_AID)), 0x6283);
    r = send(card, cmd(0x80, 0x10, 0x00, 0x00, Uint8Array.of(1, 2, 3), 256));
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [1, 2, 3]], 'still the test applet');
    // to the setls applet and back: deselect, select
    assert.equal(swOf(card, SELECT), 0x9000);
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x00, 0x00, Uint8Array.of(1), 256)), 0x6e00, 'the setls applet takes no GP class');
    assert.equal(swOf(card, selectAid(TEST_AID, 0x00, 0x0c)), 0x9000);
    assert.deepEqual(applet.events, ['select 0 0', 'deselect 0', 'select 0 12']);
  });
});

test('the command table: class, INS, P1/P2 and access checked by the OS in that order, before the handler', () => {
  withCard((card, applet) => {
    send(card, selectAid(TEST_AID));
    assert.equal(swOf(card, cmd(0xa0, 0x10, 0x00, 0x00, Uint8Array.of(1))), 0x6e00); // setls's class: not this applet's
    assert.equal(swOf(card, cmd(0x84, 0x10, 0x00, 0x00, Uint8Array.of(1))), 0x6e00); // GP secure messaging: not a plain class
    assert.equal(swOf(card, cmd(0x80, 0x11, 0x00, 0x00)), 0x6d00);
    assert.equal(swOf(card, cmd(0x80, 0x20, 0x02, 0x00)), 0x6a86); // P1/P2 before access
    assert.equal(swOf(card, cmd(0x80, 0x20, 0x00, 0x00)), 0x6982); // user PIN not verified on this channel
    assert.equal(swOf(card, cmd(0x80, 0x30, 0x00, 0x00, Uint8Array.of(0, 0))), 0x6982); // custom rule
    assert.equal(swOf(card, cmd(0x80, 0x30, 0x00, 0x00, Uint8Array.of(0x6f, 0x6b))), 0x9000);
    // PINs are the card's: VERIFY on the setls applet opens the user commands of every applet of the channel
    send(card, SELECT);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    send(card, selectAid(TEST_AID));
    assert.equal(swOf(card, cmd(0x80, 0x20, 0x00, 0x00)), 0x9000);
    assert.deepEqual(
      applet.seen.map((s) => s.ins),
      [0x30, 0x20],
    );
  });
});

test('P1-More segments are reassembled by the OS; a long answer is read with GET RESPONSE (61xx)', () => {
  withCard((card, applet) => {
    send(card, selectAid(TEST_AID));
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x01, 0x00, Uint8Array.of(1, 2))), 0x9000);
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x01, 0x00, Uint8Array.of(3))), 0x9000);
    const last = cmd(0x80, 0x10, 0x00, 0x00, Uint8Array.of(4), 256);
    const r = send(card, last);
    assert.deepEqual([r.sw, [...r.data]], [0x9000, [1, 2, 3, 4]]);
    assert.equal(applet.seen.length, 1, 'the handler runs once');
    assert.deepEqual(applet.seen[0]!.raw, [...last], 'raw: the last segment as received');
    // a chain broken by another command: 6883, dropped
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x01, 0x00, Uint8Array.of(9))), 0x9000);
    assert.equal(swOf(card, cmd(0x80, 0x40, 0x00, 0x00)), 0x6883);
    // 600 bytes: 256 + 61xx, GET RESPONSE
    let a = send(card, cmd(0x80, 0x40, 0x00, 0x00, EMPTY, 256));
    const got = [...a.data];
    while (a.sw >> 8 === 0x61) {
      a = send(card, cmd(0x00, 0xc0, 0x00, 0x00, EMPTY, a.sw & 0xff || 256));
      got.push(...a.data);
    }
    assert.equal(a.sw, 0x9000);
    assert.deepEqual(got, [...new Uint8Array(600).map((_, i) => i & 0xff)]);
  });
});

test('the class byte names the channel (GP 80–83, C0–CF; E0–EF too); the applet gets the raw CLA', () => {
  withCard((card, applet) => {
    assert.equal(swOf(card, cmd(0x81, 0x10, 0x00, 0x00, Uint8Array.of(1))), 0x6881); // channel 1 is not open
    assert.equal(send(card, cmd(0x00, 0x70, 0x00, 0x01)).sw, 0x9000);
    assert.equal(send(card, cmd(0x00, 0x70, 0x00, 0x03)).sw, 0x9000);
    assert.equal(swOf(card, cmd(0x01, 0xa4, 0x04, 0x00, TEST_AID, 256)), 0x9000);
    assert.equal(swOf(card, cmd(0x81, 0x10, 0x00, 0x00, Uint8Array.of(1), 256)), 0x9000);
    // channel 0 still has nothing selected: the default (setls) applet answers
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x00, 0x00, Uint8Array.of(1), 256)), 0x6e00);
    // a channel opened from channel 1 starts with the test applet selected (select with P2 0C)
    const opened = send(card, cmd(0x01, 0x70, 0x00, 0x00, EMPTY, 1));
    assert.deepEqual([opened.sw, [...opened.data]], [0x9000, [2]]);
    assert.equal(swOf(card, cmd(0x82, 0x10, 0x00, 0x00, Uint8Array.of(2), 256)), 0x9000);
    assert.deepEqual(
      applet.seen.map((s) => [s.cla, s.kind, s.channel]),
      [
        [0x81, 'gp', 1],
        [0x82, 'gp', 2],
      ],
    );
    assert.ok(applet.events.includes('select 2 12'));
  });
  const applet = new TestApplet();
  const { card, cleanup } = newCard({ applets: [() => applet], channels: 20 });
  try {
    for (const n of [4, 19]) assert.equal(send(card, cmd(0x00, 0x70, 0x00, n)).sw, 0x9000);
    assert.equal(swOf(card, cmd(0x40, 0xa4, 0x04, 0x00, TEST_AID, 256)), 0x9000);
    assert.equal(swOf(card, cmd(0x4f, 0xa4, 0x04, 0x00, TEST_AID, 256)), 0x9000);
    assert.equal(swOf(card, cmd(0xc0, 0x10, 0x00, 0x00, Uint8Array.of(4), 256)), 0x9000); // GP further class: channel 4
    assert.equal(swOf(card, cmd(0xef, 0x10, 0x00, 0x00, Uint8Array.of(19), 256)), 0x6e00); // E0–EF: setls's class, not this applet's
    assert.deepEqual(
      applet.seen.map((s) => [s.cla, s.kind, s.channel]),
      [[0xc0, 'gp', 4]],
    );
  } finally {
    card.close();
    cleanup();
  }
});

test('reset: every channel but 0 closed, every applet told to wipe each channel, nothing selected', () => {
  withCard((card, applet) => {
    send(card, selectAid(TEST_AID));
    send(card, cmd(0x00, 0x70, 0x00, 0x01));
    send(card, cmd(0x01, 0xa4, 0x04, 0x00, TEST_AID, 256));
    applet.events.length = 0;
    card.reset();
    assert.deepEqual(card.openChannels, [0]);
    assert.deepEqual(applet.events, ['reset 1', 'reset 0']);
    assert.equal(swOf(card, cmd(0x80, 0x10, 0x00, 0x00, Uint8Array.of(1), 256)), 0x6e00, 'nothing selected: the default applet');
    assert.equal(swOf(card, verify(USER_PIN)), 0x6985, 'the setls applet is not selected either');
    assert.equal(swOf(card, SELECT), 0x9000);
    assert.equal(swOf(card, cmd(0xa0, 0x20, 0x00, 0x00, pad(USER_PIN))), 0x9000);
  });
});

test('the card OS presents an ATR naming the card (default "setls")', () => {
  const a = newCard();
  const b = newCard({ atrName: 'card-7' });
  try {
    assert.equal(atrName(a.card.atr), 'setls');
    assert.equal(atrName(b.card.atr), 'card-7');
    const t = tempDir();
    assert.throws(() => EmulatedCard.create({ dir: t.dir, masterKey: new Uint8Array(32), userPin: USER_PIN, operatorPin: '87654321', puk: '11223344', atrName: 'a name far too long' }), RangeError);
    t.cleanup();
  } finally {
    a.card.close();
    b.card.close();
    a.cleanup();
    b.cleanup();
  }
});

test('a raw applet (TLS-SE) on another channel: its interindustry class on that channel, SELECT stays the OS’s', () => {
  const { card, cleanup } = newCard();
  const TLS_SE = Uint8Array.of(1, 2, 3, 4, 5, 0);
  try {
    assert.equal(send(card, cmd(0x00, 0x70, 0x00, 0x01)).sw, 0x9000);
    assert.equal(swOf(card, cmd(0x01, 0xa4, 0x04, 0x00, TLS_SE, 256)), 0x9000);
    assert.equal(swOf(card, cmd(0x01, 0xd8, 0x00, 0x00, new Uint8Array(0), 0)), 0x9000); // RESET of the TLS-SE session
    assert.equal(swOf(card, cmd(0x01, 0xd8, 0x00, 0x03, Uint8Array.of(0x16, 3, 3, 0, 1, 1))), 0x6982); // user PIN not verified on channel 1
    assert.equal(swOf(card, cmd(0xa1, 0xd8, 0x00, 0x00)), 0x6e00); // setls's class: not TLS-SE's
    assert.equal(swOf(card, cmd(0x81, 0xd8, 0x00, 0x00)), 0x6e00); // GlobalPlatform's: neither
    // the setls applet, selected again on channel 1 with CLA 01, answers A1
    assert.equal(swOf(card, cmd(0x01, 0xa4, 0x04, 0x00, Uint8Array.of(0xf0, 0x73, 0x65, 0x74, 0x6c, 0x73, 0x01), 256)), 0x9000);
    assert.equal(swOf(card, cmd(0xa1, 0x20, 0x00, 0x00, pad(USER_PIN))), 0x9000);
  } finally {
    card.close();
    cleanup();
  }
});
