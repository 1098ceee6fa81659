/**
 * `setls agent` and the `--operator` options of `setls serve https`: the device agent (src/agent) on
 * the card transport(s) the command opened. The operator's CA and bearer token come from files (the
 * token file is read at each request, so it can be rotated; never from argv). The card UID comes from
 * the card's security domain (GET DATA DF50), or from --card-uid for a card that has none yet.
 * `--est URL`: zero-touch enrolment first (enrol/est-client.ts) — when the card has no operator and
 * no active identity, it makes a key and an attested CSR over the operator's EST challenge, and
 * installs and activates the certificate the operator answers; otherwise nothing happens.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type pino from 'pino';
import { fromHex, SetlsError } from '../bytes/index.js';
import { DeviceAgent, parseOperatorUrl, type AgentCardOptions } from '../agent/index.js';
import { isHostId } from '../relay/index.js';
import { PcscTransport, TracingTransport, type CardTransport } from '../host/index.js';
import { estEnrol, type EstEnrolResult } from '../enrol/est-client.js';
import { openCard } from './card-setup.js';
import { withGetResponse } from './manufacturer.js';

export interface AgentCliOptions {
  /** https://host:port of the operator. */
  operator?: string;
  /** PEM file of the CA that issued the operator's certificate. */
  operatorCa?: string;
  /** File holding the agent's bearer token. */
  operatorTokenFile?: string;
  /** X-Admin-From host id (default: this machine's host name). */
  hostId?: string;
  /** The card UID (hex) when the card has no security domain to ask. */
  cardUid?: string;
  /** Zero-touch EST enrolment against this operator (https://host:port) before anything else. */
  est?: string;
}

/**
 * `--est`: enrols the card over EST when it has no operator and no active identity (the TLS service
 * must not be serving yet: the security domain is selected on channel 0). Logs one line per step.
 */
export async function estEnrolCard(transport: CardTransport, o: AgentCliOptions, log: (line: string) => void): Promise<EstEnrolResult | undefined> {
  if (!o.est) return undefined;
  parseOperatorUrl(o.est);
  const ca = o.operatorCa !== undefined ? readFileSync(o.operatorCa, 'utf8') : undefined;
  const r = await estEnrol({ url: o.est, transmit: withGetResponse((a) => transport.transmit(a)), log, ...(ca !== undefined ? { ca } : {}) });
  return r;
}

/** The host id: --host-id, else the host name reduced to the allowed characters. */
export function defaultHostId(o: AgentCliOptions): string {
  const id = o.hostId ?? (hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'setls-host');
  if (!isHostId(id)) throw new SetlsError('ERR_CLI_OPTION', `--host-id: '${id.slice(0, 80)}' is not 1..64 of A-Z a-z 0-9 . _ -`);
  return id;
}

function parseUid(hex: string): Uint8Array {
  if (!/^(?:[0-9A-Fa-f]{2}){4,32}$/.test(hex)) throw new SetlsError('ERR_CLI_OPTION', '--card-uid: 4..32 bytes of hex');
  return fromHex(hex);
}

/**
 * Starts the agent on `transports` (call it before the TLS service takes clients: the agent opens
 * its home channel from channel 0). `log` gets one line per event (lengths, SWs and timing only).
 */
export async function startAgent(transports: readonly CardTransport[], o: AgentCliOptions, log: (line: string) => void): Promise<DeviceAgent> {
  if (!o.operator) throw new SetlsError('ERR_CLI_OPTION', '--operator URL is required');
  parseOperatorUrl(o.operator);
  if (o.cardUid !== undefined && transports.length !== 1) throw new SetlsError('ERR_CLI_OPTION', '--card-uid names one card; a pool asks each card for its UID');
  const ca = o.operatorCa !== undefined ? readFileSync(o.operatorCa, 'utf8') : undefined;
  const tokenFile = o.operatorTokenFile;
  if (tokenFile !== undefined) readFileSync(tokenFile, 'utf8'); // fail now, not at the first poll
  const token = tokenFile === undefined ? undefined : (): string | undefined => {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const uid = o.cardUid !== undefined ? parseUid(o.cardUid) : undefined;
  const cards: AgentCardOptions[] = transports.map((transport) => ({ transport, ...(uid ? { uidSource: async () => uid } : {}) }));
  const agent = await DeviceAgent.start({
    operatorUrl: o.operator,
    hostId: defaultHostId(o),
    cards,
    log,
    ...(ca !== undefined ? { ca } : {}),
    ...(token ? { token } : {}),
  });
  // A card without a security domain will never report a UID: say so now rather than poll forever.
  if (agent.cards.every((c) => !c.ready && c.lastError.startsWith('ERR_AGENT_NO_ISD'))) {
    const why = agent.cards[0]!.lastError;
    await agent.stop();
    throw new SetlsError('ERR_AGENT_NO_ISD', `${why.replace(/^ERR_AGENT_NO_ISD: /, '')}: give its UID with --card-uid HEX until it has one`);
  }
  return agent;
}

/** `setls agent`: the agent alone, on the in-process card of --card-dir or a PC/SC reader. */
export async function runAgent(
  o: AgentCliOptions & { cardDir: string; cardKey?: string; reader?: string; pcscShare?: 'auto' | 'shared' | 'exclusive'; trace?: boolean },
  log: pino.Logger,
): Promise<void> {
  let transport: CardTransport;
  let closeCard: () => void = () => undefined;
  if (o.reader === undefined) {
    const opened = openCard({ cardDir: o.cardDir, cardKey: o.cardKey, trace: o.trace });
    transport = opened.transport;
    closeCard = () => opened.card.close();
  } else {
    transport = await PcscTransport.open({ reader: o.reader, waitForCardMs: 10_000, ...(o.pcscShare ? { share: o.pcscShare } : {}) });
    if (o.trace) transport = new TracingTransport(transport, (l) => process.stderr.write(l + '\n'));
  }
  let agent: DeviceAgent | undefined;
  try {
    const est = await estEnrolCard(transport, o, (l) => log.info(l));
    if (est) console.log(`setls: EST ${est.status} (card ${est.uid}${est.status === 'enrolled' ? `, slot ${est.slot}` : ''})`);
    if (o.operator) agent = await startAgent([transport], o, (l) => log.info(l));
  } catch (e) {
    await transport.close();
    closeCard();
    throw e;
  }
  if (!agent) {
    // --est alone: the enrolment is done, nothing to relay.
    await transport.close();
    closeCard();
    return;
  }
  const running = agent;
  console.log(`setls: agent of host ${defaultHostId(o)} polling ${o.operator}`);
  const stop = (): void => {
    void running
      .stop()
      .then(() => transport.close())
      .then(() => {
        closeCard();
        process.exit(0);
      });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
