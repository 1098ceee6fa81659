/**
 * Prometheus metrics (prom-client) for a TlsTandem or TlsPool, and a `/metrics` admin server that
 * listens on 127.0.0.1 only (a separate port from the TLS listener).
 *
 *   setls_handshakes_total{version,result,resumption}   result = ok | failed
 *   setls_alerts_sent_total{alert}                      fatal alerts sent to clients, by IANA name (decrypt_error, ...),
 *                                                       as the card reported them (never read from ciphertext);
 *                                                       `unknown` when the card does not report it (TLS-SE)
 *   setls_apdus_total{command}, setls_apdu_bytes_total{direction}, setls_apdu_duration_seconds
 *   setls_card_busy_seconds_total{card}                 time a session held the card (pool)
 *   setls_queue_length                                  connections waiting for a card (hello stage, queue, DTLS)
 *   setls_card_up{card}                                 pool health: 1 up, 0 down
 *   setls_sessions_total{event}                         setls:session events: queued, handshake, established,
 *                                                       failed, peer_closed (the client left mid-handshake), closed, idle, and under pressure overloaded,
 *                                                       evicted, peer_limit, cut, exported; refused (every card locked)
 *
 * APDU and session figures come from the `setls:apdu` / `setls:session` diagnostics channels.
 * imports host/ and registry/.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { alertName } from '../registry/tls-names.js';
import type { ApduEvent } from './card-client.js';
import { TlsAlertError } from './errors.js';
import type { TlsPool } from './pool.js';
import type { SeTlsSocket } from './socket.js';
import type { SessionEvent, TlsTandem } from './tandem.js';

const VERSIONS: Record<number, string> = { 0x0304: 'TLSv1.3', 0x0303: 'TLSv1.2' };

export interface SetlsMetrics {
  readonly registry: Registry;
  /** Stops listening to the source and the diagnostics channels. */
  detach(): void;
}

export function createMetrics(source: TlsPool | TlsTandem, registry = new Registry()): SetlsMetrics {
  const handshakes = new Counter({ name: 'setls_handshakes_total', help: 'TLS handshakes through the card(s)', labelNames: ['version', 'result', 'resumption'], registers: [registry] });
  const alerts = new Counter({ name: 'setls_alerts_sent_total', help: 'fatal alerts sent to clients (handshake and record layer), by name', labelNames: ['alert'], registers: [registry] });
  // Per-APDU and per-session figures are plain tallies on the hot path, handed to prom-client when
  // scraped (collect): a labelled prom-client inc() hashes its labels each time (a measured share of a
  // busy server's CPU), a Map increment does not.
  const apduTally = new Map<string, number>();
  const byteTally = { command: 0, response: 0 };
  const sessionTally = new Map<string, number>();
  new Counter({
    name: 'setls_apdus_total',
    help: 'APDU exchanges with the card(s)',
    labelNames: ['command'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [command, n] of apduTally) this.inc({ command }, n);
    },
  });
  new Counter({
    name: 'setls_apdu_bytes_total',
    help: 'APDU bytes',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const direction of ['command', 'response'] as const) if (byteTally[direction]) this.inc({ direction }, byteTally[direction]);
    },
  });
  const apduDuration = new Histogram({ name: 'setls_apdu_duration_seconds', help: 'APDU round trip', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2], registers: [registry] });
  new Counter({
    name: 'setls_sessions_total',
    help: 'session lifecycle events',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, n] of sessionTally) this.inc({ event }, n);
    },
  });
  const isPool = 'slots' in source;
  const pool = isPool ? (source as TlsPool) : undefined;
  new Gauge({
    name: 'setls_queue_length',
    help: 'connections waiting for a card',
    registers: [registry],
    collect() {
      this.set(source.queued);
    },
  });
  new Gauge({
    name: 'setls_card_up',
    help: 'card health in the pool (1 up, 0 down)',
    labelNames: ['card'],
    registers: [registry],
    collect() {
      if (pool) for (const s of pool.slots) this.set({ card: s.name }, s.health === 'up' ? 1 : 0);
      else this.set({ card: 'card0' }, 1);
    },
  });
  new Gauge({
    name: 'setls_card_busy_seconds_total',
    help: 'time sessions held each card (handshake, and the record layer when it runs in the card)',
    labelNames: ['card'],
    registers: [registry],
    collect() {
      if (!pool) return;
      const now = performance.now();
      for (const s of pool.slots) this.set({ card: s.name }, (s.busyMs + (s.busy ? now - s.busySince : 0)) / 1000);
    },
  });

  const onSecure = (s: SeTlsSocket): void => {
    const info = s.getSessionInfo();
    handshakes.inc({ version: VERSIONS[info?.version ?? 0] ?? 'unknown', result: 'ok', resumption: info?.resumption ?? 'full' });
  };
  const onError = (e: Error & { code?: string }): void => {
    if (e instanceof TlsAlertError && e.alertSent) alerts.inc({ alert: e.alert === undefined ? 'unknown' : alertName(e.alert) });
    // Alerts of an established session (ERR_TLS_ALERT_*) are not failed handshakes.
    if (e.code === undefined || e.code.startsWith('ERR_TLS_ALERT_') || !/HANDSHAKE|TLS|NOT_CLIENT_HELLO/.test(e.code)) return;
    handshakes.inc({ version: 'unknown', result: 'failed', resumption: 'unknown' });
  };
  const onApdu = (m: unknown): void => {
    const ev = m as ApduEvent;
    apduTally.set(ev.command, (apduTally.get(ev.command) ?? 0) + 1);
    byteTally.command += ev.commandLength;
    byteTally.response += ev.responseLength;
    apduDuration.observe(ev.durationMs / 1000);
  };
  const onSession = (m: unknown): void => {
    const event = (m as SessionEvent).event;
    sessionTally.set(event, (sessionTally.get(event) ?? 0) + 1);
  };
  source.on('secureConnection', onSecure);
  source.on('sessionError', onError);
  diagnostics_channel.subscribe('setls:apdu', onApdu);
  diagnostics_channel.subscribe('setls:session', onSession);
  return {
    registry,
    detach() {
      source.off('secureConnection', onSecure);
      source.off('sessionError', onError);
      diagnostics_channel.unsubscribe('setls:apdu', onApdu);
      diagnostics_channel.unsubscribe('setls:session', onSession);
    },
  };
}

/** `GET /metrics` on 127.0.0.1:`port` (0 = any free port). */
export async function startAdminServer(metrics: SetlsMetrics, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.setHeader('content-type', metrics.registry.contentType);
          res.end(text);
        },
        (e: Error) => {
          res.statusCode = 500;
          res.end(e.message);
        },
      );
      return;
    }
    res.statusCode = 404;
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
