/**
 * Refusals of libcoap clients, asserted as refusals (libcoap exits 0 whatever happened, so "no
 * payload" alone would also pass against a dead server): what the client printed — the fatal alert
 * it read from the server, or its own certificate verification failure — tied by the client's port
 * to what the server recorded for that very connection (the TlsTandem's 'sessionError', the DTLS
 * association's close reason). Every refused run is preceded, in the same test, by a positive
 * control with the same client.
 */
import assert from 'node:assert/strict';
import type { DtlsAssociation, DtlsServer } from '../../src/host/dtls/index.js';
import type { RunResult } from './helpers.js';

/** The client read a fatal alert sent by the server (OpenSSL and GnuTLS spellings). */
export const ALERT_READ = /SSL3 alert read:fatal:\S.*|Alert '\d+': \S.*/;
/** The client refused the server's certificate itself. */
export const VERIFY_FAILED = /certificate verify failed|unable to get local issuer certificate|The peer certificate's CA is unknown/;

/** What a refused client printed: `re` matched (the match is returned), and no resource payload. */
export function assertRefused(r: RunResult, re: RegExp): string {
  const out = `${r.stdout}\n${r.stderr}`;
  const m = re.exec(out);
  assert.ok(m, `the refusal (${re}) is not in coap-client's output:\n${out}`);
  assert.doesNotMatch(out, /setls demo plug|"relay":/, 'a refused client got a resource payload');
  return m[0];
}

/** The client's local port, from libcoap's "127.0.0.1:PORT <-> 127.0.0.1:SERVER" log lines. */
export function clientPort(r: RunResult): number {
  const m = /\d+\.\d+\.\d+\.\d+:(\d+) <-> \d+\.\d+\.\d+\.\d+:\d+ (?:TLS|DTLS)/.exec(`${r.stdout}\n${r.stderr}`);
  assert.ok(m, `no session line in coap-client's output:\n${r.stdout}\n${r.stderr}`);
  return Number(m[1]);
}

export interface ServerEvent {
  readonly port: number | undefined;
  readonly what: string;
}

/** What the servers recorded about failed sessions: TlsTandem 'sessionError's and DTLS association ends. */
export class ServerLog {
  readonly events: ServerEvent[] = [];

  watchTandem(tandem: { on(e: 'sessionError', l: (e: Error & { code?: string }, p: { remotePort?: number | undefined }) => void): unknown }): this {
    tandem.on('sessionError', (e, p) => this.events.push({ port: p?.remotePort, what: `tls ${e.code ?? ''}: ${e.message}` }));
    return this;
  }

  watchDtls(dtls: DtlsServer): this {
    dtls.on('association', (a: DtlsAssociation) => a.once('close', (why: string) => this.events.push({ port: a.port, what: `dtls ${why}` })));
    return this;
  }

  /** Waits (bounded poll) for the server's record of the connection from `port` matching `re`. */
  async expect(port: number, re: RegExp, timeoutMs = 10_000): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((x) => x.port === port && re.test(x.what));
      if (e) return e;
      if (Date.now() > deadline) {
        throw new Error(`the server recorded nothing matching ${re} for client port ${port}: ${JSON.stringify(this.events.filter((x) => x.port === port))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** The card refused the TLS handshake (its alert went to the client). */
export const TLS_REFUSED = /^tls ERR_TLS_HANDSHAKE_FAILED: /;
/** The DTLS association ended on an alert the card sent. */
export const DTLS_ALERT_SENT = /^dtls alert [a-z_]+ sent$/;
/** The DTLS association ended on an alert the client sent (its own verification failed). */
export const DTLS_ALERT_RECEIVED = /^dtls alert [a-z_]+ received$/;
