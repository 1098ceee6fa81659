/**
 * NewSessionTicket issuance after the client Finished (RFC 8446 §4.6.1), when config.ticketKeys is
 * set: config.ticketCount tickets (default 1), each with a fresh nonce and ticket_age_add, sealing
 * (tickets.ts) the ticket's PSK = HKDF-Expand-Label(resumption_master_secret, "resumption", nonce),
 * the suite, entropy.now(), SNI, ALPN and the client's certificate (ticketState.ts).
 * SECRETS: per-ticket PSKs and encoded states (wiped here); the caller wipes resumption_master_secret.
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError, readU32, wipe } from '../../bytes/index.js';
import type { TlsServerConfig } from '../api.js';
import { tlsError } from '../errors.js';
import { resumptionPsk } from '../keyschedule/schedule.js';
import { sealTicket } from '../tickets.js';
import { buildNewSessionTicket } from '../wire/newSessionTicket.js';
import type { HandshakeContext } from './handshakeContext.js';
import { DEFAULT_TICKET_LIFETIME_SECONDS, MAX_TICKET_LIFETIME_SECONDS } from './psk.js';
import { encodeTicketState } from './ticketState.js';

const TICKET_NONCE_LENGTH = 8;
const MAX_TICKET_COUNT = 16;

/** Checks the ticket settings of a config (ERR_TLS_ARGUMENT); called when a connection is created. */
export function checkTicketConfig(cfg: TlsServerConfig): void {
  const life = cfg.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME_SECONDS;
  if (!Number.isInteger(life) || life < 1 || life > MAX_TICKET_LIFETIME_SECONDS) {
    throw new SetlsError('ERR_TLS_ARGUMENT', `ticketLifetimeSeconds ${life} (1..${MAX_TICKET_LIFETIME_SECONDS})`);
  }
  const count = cfg.ticketCount ?? 1;
  if (!Number.isInteger(count) || count < 0 || count > MAX_TICKET_COUNT) {
    throw new SetlsError('ERR_TLS_ARGUMENT', `ticketCount ${count} (0..${MAX_TICKET_COUNT})`);
  }
  const keys = cfg.ticketKeys;
  if (keys) {
    for (const k of [keys.current, ...(keys.previous ?? [])]) {
      if (k.id.length !== 4 || k.key.length !== 32) throw new SetlsError('ERR_TLS_ARGUMENT', 'a ticket key has a 4-byte id and a 32-byte key');
    }
  }
}

/** The NewSessionTicket messages (whole handshake messages) for this connection. */
export function issueTickets(ctx: HandshakeContext, resumptionMasterSecret: Uint8Array): Uint8Array[] {
  const cfg = ctx.config;
  const keys = cfg.ticketKeys;
  if (!keys) return [];
  const lifetimeSeconds = cfg.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME_SECONDS;
  const out: Uint8Array[] = [];
  for (let i = 0; i < (cfg.ticketCount ?? 1); i++) {
    const nonce = cfg.entropy.random(TICKET_NONCE_LENGTH);
    const ageAddBytes = cfg.entropy.random(4);
    if (nonce.length !== TICKET_NONCE_LENGTH || ageAddBytes.length !== 4) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned short bytes');
    const ageAdd = readU32(ageAddBytes, 0);
    const psk = resumptionPsk(ctx.suite, resumptionMasterSecret, nonce);
    const state = encodeTicketState({
      version: ctx.version,
      cipherSuite: ctx.suite.id,
      createdMs: cfg.entropy.now(),
      ageAdd,
      lifetimeSeconds,
      psk,
      serverName: ctx.serverName,
      alpn: ctx.alpn,
      peerCertificate: ctx.peer?.certificate,
    });
    try {
      const ticket = sealTicket(keys.current, state, cfg.entropy);
      out.push(buildNewSessionTicket({ lifetimeSeconds, ageAdd, nonce, ticket }));
    } finally {
      wipe(psk, state);
    }
  }
  return out;
}
