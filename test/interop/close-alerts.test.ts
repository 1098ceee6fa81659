// How a setls HTTPS server ends connections, seen by a TLS 1.3 client over a real socket that
// decrypts every record the server sends (tls13-tap.ts, Node's TLS client + its key log):
// - a request node:http rejects (bare LF) gets 400 + Connection: close, then close_notify, then FIN
//   (RFC 8446 §6.1), with the record layer in the card and on the host;
// - a fatal alert is read by a client that keeps sending after the record that failed (FIN and a
//   drain of its reads, not a TCP reset);
// - a TLS 1.3 handshake failure after ServerHello (bad client Finished) is counted in
//   setls_alerts_sent_total by the alert the card reports (decrypt_error), not by a ciphertext byte.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { allowExport, makeTestCard, startTestHttps, type TestCard } from './helpers.js';
import { Tls13Tap } from './tls13-tap.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { createMetrics } from '../../src/host/index.js';

for (const recordLayer of ['card', 'host'] as const) {
  describe(`connection ends, record layer in the ${recordLayer}`, () => {
    let card: TestCard;
    let server: RunningHttps;
    before(async () => {
      card = await makeTestCard();
      if (recordLayer === 'host') await allowExport(card);
      server = await startTestHttps(card, undefined, { recordLayer });
    });
    let serverClosed = false;
    after(async () => {
      if (!serverClosed) await server?.close();
      card?.cleanup();
    });

    test('a bare-LF request line (GET / HTTP/1.0\\n\\n): 400 Bad Request with Connection: close, then close_notify, then FIN', async () => {
      const tap = await Tls13Tap.connect(server.port, { ca: card.ca });
      try {
        tap.client.write('GET / HTTP/1.0\n\n');
        await tap.closed;
        const text = tap.text();
        assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(text, /\r\nConnection: close\r\n/i);
        const last = tap.records().at(-1)!;
        assert.deepEqual([last.key, last.type, ...last.content], ['application', 21, 1, 0], 'the last record is our close_notify');
        assert.deepEqual(tap.alerts(), [[1, 0]]);
        assert.equal(tap.fin, true, 'FIN after close_notify');
        assert.equal(tap.error, undefined);
      } finally {
        tap.destroy();
      }
    });

    test('a positive control on the same path: a well-formed request gets 200 and the session stays open', async () => {
      const tap = await Tls13Tap.connect(server.port, { ca: card.ca });
      try {
        tap.client.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n');
        assert.ok(await tap.until(() => /"device":"setls demo plug"/.test(tap.text())), tap.text());
        assert.match(tap.text(), /^HTTP\/1\.1 200 OK\r\n/);
        assert.deepEqual(tap.alerts(), []);
        assert.equal(tap.fin, false);
      } finally {
        tap.destroy();
      }
    });

    test('a fatal alert reaches a client that keeps sending after the bad record (FIN and drain, no TCP reset)', async () => {
      const tap = await Tls13Tap.connect(server.port, { ca: card.ca });
      try {
        // The card has the client's Finished once its tickets (application key) arrived.
        assert.ok(await tap.until(() => tap.records().some((r) => r.key === 'application')), 'no NewSessionTicket');
        tap.takeOver();
        tap.raw.pause(); // the client reads nothing until it has written everything
        const failed = once(server.pool!, 'sessionError');
        const bad = tap.seal(23, Buffer.from('GET /status HTTP/1.1\r\n\r\n'));
        bad[bad.length - 1]! ^= 0x01; // the tag no longer verifies: bad_record_mac
        // …followed by 20 records more (320 KiB): far more than the server reads before it fails.
        const more = Array.from({ length: 20 }, () => tap.seal(23, Buffer.alloc(16_000, 0x61)));
        tap.raw.write(Buffer.concat([bad, ...more]));
        const [err] = (await failed) as [Error & { code?: string; alert?: number }];
        assert.equal(err.code, 'ERR_TLS_ALERT_SENT');
        assert.equal(err.alert, 20);
        assert.match(err.message, /bad_record_mac \(20\) sent/);
        // The server has answered and ended its side; the client still writes (a GET), then reads.
        tap.raw.write(tap.seal(23, Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')));
        tap.raw.resume();
        await tap.closed;
        assert.equal(tap.error, undefined, 'no ECONNRESET/EPIPE: the server drained instead of resetting');
        assert.deepEqual(tap.alerts(), [[2, 20]]);
        assert.equal(tap.fin, true);
      } finally {
        tap.destroy();
      }
    });

    // Last: it stops this describe's server.
    test('server shutdown with a session open (keep-alive, after a response): close_notify, then FIN', async () => {
      const tap = await Tls13Tap.connect(server.port, { ca: card.ca });
      try {
        tap.client.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n');
        assert.ok(await tap.until(() => /"device":"setls demo plug"/.test(tap.text())), tap.text());
        assert.equal(server.pool!.exportedSessions, recordLayer === 'host' ? 1 : 0);
        serverClosed = true;
        await server.close();
        await tap.closed;
        assert.deepEqual(tap.alerts(), [[1, 0]]);
        assert.equal(tap.fin, true);
        assert.equal(tap.error, undefined);
      } finally {
        tap.destroy();
      }
    });
  });
}

describe('the alert of a failed handshake is the one the card reports', () => {
  let card: TestCard;
  let server: RunningHttps;
  before(async () => {
    card = await makeTestCard();
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  test('TLS 1.3, a client Finished with a wrong verify_data: decrypt_error, encrypted, counted as setls_alerts_sent_total{alert="decrypt_error"}', async () => {
    const metrics = createMetrics(server.pool!);
    let finishedSeen = false;
    const failed = once(server.pool!, 'sessionError');
    const tap = await Tls13Tap.connect(server.port, {
      ca: card.ca,
      // The client's first encrypted record is its Finished (handshake key, sequence 0): open it,
      // change one byte of verify_data, seal it again — a well-formed record with a wrong MAC inside.
      rewrite: (rec, t) => {
        if (rec[0] !== 23 || finishedSeen) return rec;
        finishedSeen = true;
        const opened = t.clientHandshakeKeys().open(rec);
        assert.ok(opened && opened.type === 22 && opened.content[0] === 20, 'the first encrypted client record is its Finished');
        const fin = Buffer.from(opened.content);
        fin[4]! ^= 0xff;
        return t.clientHandshakeKeys().seal(22, fin);
      },
    });
    try {
      const [err] = (await failed) as [Error & { code?: string; alert?: number }];
      await tap.closed;
      assert.equal(err.code, 'ERR_TLS_HANDSHAKE_FAILED');
      assert.equal(err.alert, 51);
      assert.match(err.message, /alert decrypt_error \(51\) sent/);
      // What the client read: one encrypted alert, decrypt_error (the card's key, not a guess).
      const alerts = tap.records().filter((r) => r.type === 21);
      assert.equal(alerts.length, 1);
      assert.notEqual(alerts[0]!.key, 'plain', 'after ServerHello the alert is encrypted');
      assert.deepEqual([...alerts[0]!.content], [2, 51]);
      const text = await metrics.registry.getSingleMetricAsString('setls_alerts_sent_total');
      assert.match(text, /setls_alerts_sent_total\{alert="decrypt_error"\} 1$/m);
      assert.doesNotMatch(text, /alert="\d+"/, 'no label made of a ciphertext byte');
    } finally {
      metrics.detach();
      tap.destroy();
    }
  });
});
