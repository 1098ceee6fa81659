import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CardClient, EapSession } from '../../src/host/index.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { FakeCard, record, toyOpen } from './fake-card.js';

test('property: any fragment sizes / APDU modes / Identifier start → the flight arrives whole and the record layer round-trips', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        flightSize: fc.integer({ min: 10, max: 50_000 }),
        cardFragment: fc.integer({ min: 1, max: 16384 }),
        maxFragment: fc.integer({ min: 16, max: 3000 }),
        helloLen: fc.integer({ min: 1, max: 5000 }),
        initialId: fc.integer({ min: 0, max: 255 }),
        extended: fc.boolean(),
        use9F: fc.boolean(),
        maxBlock: fc.integer({ min: 1, max: 65536 }),
        plain: fc.uint8Array({ minLength: 0, maxLength: 2000 }),
      }),
      async (p) => {
        const card = new FakeCard({ flightSize: p.flightSize, cardFragment: p.cardFragment, use9F: p.use9F, maxBlock: p.maxBlock });
        const t = new InProcessTransport(card.process);
        const transport: CardTransport = p.extended ? t : { transmit: (a) => t.transmit(a), close: () => t.close(), extendedLength: false };
        const client = new CardClient(transport);
        await client.select();
        await client.verifyPin('1234');
        await client.resetState();
        const s = new EapSession(client, { maxFragment: p.maxFragment, initialId: p.initialId });
        const st = await s.handshake([record(22, new Uint8Array(p.helloLen).fill(1))], 1000);
        assert.deepEqual(Buffer.from(st.toClient), Buffer.from(card.flightBytes));
        const fin = await s.handshake([record(20, Uint8Array.of(1)), record(22, Uint8Array.of(20, 0, 0, 0))]);
        assert.equal(fin.done, true);
        const rec = await s.encrypt(23, p.plain);
        assert.deepEqual(Buffer.from(toyOpen(rec).plaintext), Buffer.from(p.plain));
        const d = await s.decrypt(rec);
        assert.deepEqual(Buffer.from(d.plaintext), Buffer.from(p.plain));
      },
    ),
    { numRuns: 60 },
  );
});
