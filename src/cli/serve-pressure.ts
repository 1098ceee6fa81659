/**
 * The scheduling settings `serve https` and `serve coap` share (docs/architecture.md, "Sessions
 * under pressure"): the card channels to serve on (all the card has, less the two the admin socket
 * needs: its channel and the spare its per-client renewal opens), the hold limit, the hello-stage and
 * per-peer bounds — from the command-line flags to TlsPool / DtlsServer options; the log level of the
 * errors an attack produces by the thousand.
 * imports host/ and cli/card-files.
 */
import type { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { CardClient, probeLogicalChannels, type CardTransport, type TlsPoolOptions } from '../host/index.js';
import { cardPaths } from './card-files.js';

/** The flags (all optional; the defaults are the scheduler's). */
export interface PressureFlags {
  /** Logical channels to serve on per card (default: all the card opens, less the admin socket's two). */
  channels?: number;
  /** Hold limit while others wait, ms. */
  holdMs?: number;
  /** Handshake deadline, ms (also the queue deadline). */
  handshakeTimeoutMs?: number;
  /** Connections still sending their ClientHello, at most. */
  maxPending?: number;
  /** Waiting connections per source IP. */
  maxPerPeer?: number;
  /** Channels one source IP holds while others wait. */
  maxActivePerPeer?: number;
}

/** Channels the admin socket keeps on an in-process card that offers one: its own and the spare of its renewal. */
export const ADMIN_CHANNELS = 2;
/**
 * Channels the device agent (--operator) keeps: its home channel on the security domain and the
 * script channel it opens from there for each of the operator's scripts.
 */
export const AGENT_CHANNELS = 2;

/**
 * How many logical channels to serve on: `flags.channels` when given (checked against the card),
 * else every channel the card can open less ADMIN_CHANNELS when an admin socket will be offered
 * (in-process card with its operator PIN file) and less AGENT_CHANNELS when the device agent runs,
 * at least 1. Probes the card (MANAGE CHANNEL open /
 * close) before anything else uses it.
 */
export async function servingChannels(transport: CardTransport, o: { cardDir?: string; inProcess: boolean; channels?: number; agent?: boolean }): Promise<number> {
  const total = await probeLogicalChannels(new CardClient(transport));
  const admin =
    (o.inProcess && o.cardDir !== undefined && existsSync(cardPaths(o.cardDir).adminFile) ? ADMIN_CHANNELS : 0) + (o.agent ? AGENT_CHANNELS : 0);
  if (o.channels !== undefined) {
    if (o.channels > total) throw new RangeError(`--channels ${o.channels}: the card opens only ${total} logical channel${total === 1 ? '' : 's'}`);
    return o.channels;
  }
  return Math.max(1, total - admin);
}

/** TlsPool options from the flags (the scheduler's defaults where a flag is absent). */
export function poolPressureOptions(f: PressureFlags): Partial<TlsPoolOptions> {
  return {
    ...(f.holdMs !== undefined ? { maxHoldMs: f.holdMs } : {}),
    ...(f.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: f.handshakeTimeoutMs } : {}),
    ...(f.maxPending !== undefined ? { maxPending: f.maxPending } : {}),
    ...(f.maxPerPeer !== undefined ? { maxPerPeer: f.maxPerPeer } : {}),
    ...(f.maxActivePerPeer !== undefined ? { maxActivePerPeer: f.maxActivePerPeer } : {}),
  };
}

/**
 * The log level of a session error: what an attack or a port scan produces by the thousand (a
 * client gone mid-handshake, a connection evicted, over its peer's limit, without a ClientHello by
 * the deadline or not TLS at all, answered "overloaded") goes to debug — counted in the metrics,
 * not written line by line while the server is under pressure; any other failed session (the card's
 * alert: a bad handshake, an unknown CA, a revoked certificate …) at warn.
 */
export function logLevelOf(code: string | undefined): 'debug' | 'warn' {
  return code === 'ERR_HOST_PEER_CLOSED' || code === 'ERR_HOST_EVICTED' || code === 'ERR_HOST_PEER_LIMIT' || code === 'ERR_HOST_HANDSHAKE_TIMEOUT' || code === 'ERR_HOST_OVERLOADED' || code === 'ERR_HOST_NOT_CLIENT_HELLO' ? 'debug' : 'warn';
}

type LogFn = (obj: object, msg: string) => void;

/**
 * The serve commands' logging of a pool's sessions: a failed session at logLevelOf(code) with its
 * peer, a card error (no peer) at error, the listen error left to the command (it fails with it),
 * an "overloaded" answer at debug.
 */
export function logPoolEvents(pool: EventEmitter, log: { debug: LogFn; warn: LogFn; error: LogFn }): void {
  pool.on('sessionError', (err: Error & { code?: string; syscall?: string }, peer: { remoteAddress?: string; remotePort?: number }) => {
    if (err.syscall === 'listen') return; // the command fails with it
    log[peer?.remoteAddress ? logLevelOf(err.code) : 'error']({ code: err.code, err: err.message, peer: peer?.remoteAddress ? `${peer.remoteAddress}:${peer.remotePort}` : undefined }, peer?.remoteAddress ? 'session ended with an error' : 'card error');
  });
  pool.on('refused', (peer: { remoteAddress?: string; remotePort?: number; code?: string }) =>
    log.debug({ peer }, peer.code === 'ERR_HOST_CARD_LOCKED' ? 'card locked: ClientHello answered with an access_denied alert' : 'overloaded: ClientHello answered with an internal_error alert'),
  );
}
