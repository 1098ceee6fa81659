/**
 * What bench/run.ts (the parent, hosting the servers) and bench/client.ts (the load generator, a
 * separate process) say to each other: one JSON job per line on the child's stdin, one JSON result
 * per line on its stdout.
 */

/** The TLS parameters both sides pin, so setls and node:tls do the same handshake. */
export const PINNED = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256',
  ecdhCurve: 'X25519',
  sigalgs: 'ecdsa_secp256r1_sha256',
  alpn: 'http/1.1',
} as const;

/**
 * handshake: connect, handshake, close. request: + GET /status (Connection: close). bulk: + GET /bytes/N.
 * hold: open `n` connections (`concurrency` at once), full TLS 1.3 handshake + one GET /status
 * (keep-alive) on each, then KEEP them open and idle (the client holds them between jobs).
 * release: one more GET /status on every held connection (each must still be open: the proof the
 * sessions were alive while idle), then close them all.
 * replay: plain TCP, no TLS: each connection exchanges `flights` (byte counts) with a replay server
 * (bench/servers.ts startReplayFloor), to measure what the sockets alone cost a Node server.
 */
export type JobKind = 'handshake' | 'request' | 'bulk' | 'hold' | 'release' | 'replay';

/**
 * A TLS 1.3 full handshake of the bench's pinned client with `setls serve https`, as byte counts on
 * the wire, captured with a TCP proxy (2026-12-08): ClientHello 210 → server flight 767; client
 * Finished 64 → the card's ticket 156; close_notify 24 + FIN → close_notify 24 + FIN. Client first,
 * then alternating; the last two are the closing pair.
 */
export const SETLS_HANDSHAKE_FLIGHTS: readonly number[] = [210, 767, 64, 156, 24, 24];

export interface ClientConfig {
  /** PEM of the local CA both servers' certificates chain to. */
  readonly ca: string;
  readonly servername: string;
  readonly host: string;
}

export interface Job {
  readonly id: number;
  readonly kind: JobKind;
  readonly port: number;
  /** Sequential connections (each a fresh full handshake). */
  readonly n: number;
  /** For bulk: body size requested from /bytes/N. */
  readonly bytes?: number;
  /** Protocol version pinned by the client (default TLSv1.3). */
  readonly version?: 'TLSv1.3' | 'TLSv1.2';
  /**
   * Resumption: a priming connection (not counted) gets a session (ticket / session id); every
   * measured connection offers the latest session received and must come out resumed.
   */
  readonly resume?: boolean;
  /** Connections in flight at once (default 1: sequential). */
  readonly concurrency?: number;
  /** Give up starting new connections after this many ms (bounded load). */
  readonly maxMs?: number;
  /** Check the body of /bytes/N (the demo plug's pattern) byte by byte. */
  readonly checkBody?: boolean;
  /** For replay: the byte counts of the exchange, client first, alternating (an even number). */
  readonly flights?: readonly number[];
}

/** The TLS 1.2 suite pinned for the 1.2 runs (ECDSA P-256 on both servers). */
export const PINNED12 = { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', standardName: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' } as const;

/** What the client saw of the negotiated session (first connection of the job). */
export interface SessionFacts {
  readonly protocol: string | null;
  readonly cipher: string;
  readonly group: string | undefined;
  readonly alpn: string | false | null;
  readonly peerCurve: string | undefined;
}

export interface JobResult {
  readonly id: number;
  readonly kind: JobKind;
  readonly n: number;
  /** Connections that completed as expected. */
  readonly ok: number;
  readonly errors: readonly string[];
  /** Wall time of the whole job (all connections, closes included), ms. */
  readonly wallMs: number;
  /** Per connection: connect() → secureConnect, ms. */
  readonly handshakeMs: readonly number[];
  /** Per connection: connect() → what the job waits for (handshake: secureConnect; request/bulk: last response byte), ms. */
  readonly latencyMs: readonly number[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The client process's own CPU over the job, µs (to show whether the client is the bottleneck). */
  readonly clientCpuUs: number;
  /** Connections the client saw resumed (must be 0: every handshake is a full one). */
  readonly resumed: number;
  /** Session tickets the server sent (the client never uses them). */
  readonly ticketsReceived: number;
  /** Response body bytes received (request/bulk). */
  readonly bodyBytes: number;
  /** For bulk: request written → last byte, ms. */
  readonly transferMs: number;
  readonly facts: SessionFacts | undefined;
  /** hold / release: connections the client holds open after the job. */
  readonly held?: number;
  /** release: held connections that closed while idle (before the final GET); must be 0. */
  readonly closedEarly?: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
