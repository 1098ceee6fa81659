/**
 * WAIT_FINISHED: waits for the client's Finished (after its Certificate/CertificateVerify when client
 * auth ran), verifies it in constant time and switches the read side to the client application
 * traffic keys. When ticket keys are configured, derives resumption_master_secret and sends the
 * NewSessionTickets in the same call (tickets.ts). Anything else, a KeyUpdate included, is
 * unexpected_message here.
 * SECRETS: the HandshakeContext's (wiped on exit or wipe()).
 * imports bytes/ and tls/ siblings only.
 */
import { ctEqual, wipe } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { tlsError } from '../errors.js';
import { finishedVerifyData, trafficKeys } from '../keyschedule/schedule.js';
import { parseFinished } from '../wire/finished.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import type { Effect, ServerState, Transition } from './effects.js';
import { ExpectTraffic } from './expectTraffic.js';
import { wipeContext, type HandshakeContext } from './handshakeContext.js';
import { issueTickets } from './issueTickets.js';

export class ExpectFinished implements ServerState {
  readonly name = 'ExpectFinished';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = true;
  private exporterHandedOver = false;

  constructor(private readonly ctx: HandshakeContext) {}

  handleApplicationData(): Transition {
    // 0-RTT is never accepted, so application data before Finished is a protocol violation.
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before client Finished');
  }

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.finished) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected Finished, got handshake type ${msg.type}`);
    }
    const { suite, transcript, observe } = this.ctx;
    const received = parseFinished(msg.body, suite.hashLength);
    const expected = finishedVerifyData(suite, this.ctx.clientHsTraffic, transcript.current());
    const ok = ctEqual(received, expected);
    wipe(expected);
    if (!ok) throw tlsError('ERR_TLS_DECRYPT_ERROR', 'client Finished does not verify');
    transcript.add(msg.raw);

    let tickets: Uint8Array[] = [];
    if (this.ctx.master && this.ctx.config.ticketKeys) {
      const rms = this.ctx.master.resumptionMasterSecret(transcript.current());
      try {
        tickets = issueTickets(this.ctx, rms);
      } finally {
        wipe(rms);
      }
    }
    const clientApKeys = trafficKeys(suite, this.ctx.clientApTraffic);
    observe?.('c_ap_key', clientApKeys.key);
    observe?.('c_ap_iv', clientApKeys.iv);
    this.exporterHandedOver = true;
    // ExpectTraffic keeps (a copy of) the client application traffic secret to ratchet it on KeyUpdate.
    const next = new ExpectTraffic(suite, this.ctx.clientApTraffic.slice());
    this.wipe();
    const effects: Effect[] = [
      { kind: 'installReadKeys', keys: clientApKeys },
      { kind: 'exporterSecret', secret: this.ctx.exporter },
    ];
    if (this.ctx.peer) effects.push({ kind: 'peerAuthenticated', peer: this.ctx.peer });
    effects.push({ kind: 'handshakeComplete' });
    for (const t of tickets) effects.push({ kind: 'sendHandshake', message: t });
    return { next, effects };
  }

  wipe(): void {
    wipeContext(this.ctx, this.exporterHandedOver);
  }
}
