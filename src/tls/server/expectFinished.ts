/**
 * WAIT_FINISHED: waits for the client's Finished (no client auth, no EndOfEarlyData yet), verifies it
 * in constant time and switches the read side to the client application traffic keys. Anything else,
 * a KeyUpdate included, is unexpected_message here.
 * SECRETS: clientHsTraffic, clientApTraffic, exporter (wiped on exit or wipe()).
 * imports bytes/ and tls/ siblings only.
 */
import { ctEqual, wipe } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import type { SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import { finishedVerifyData, trafficKeys, type SecretObserver } from '../keyschedule/schedule.js';
import type { Transcript } from '../keyschedule/transcript.js';
import { parseFinished } from '../wire/finished.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import type { ServerState, Transition } from './effects.js';
import { ExpectTraffic } from './expectTraffic.js';

export class ExpectFinished implements ServerState {
  readonly name = 'ExpectFinished';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = true;
  private exporterHandedOver = false;

  constructor(
    private readonly suite: SuiteParams,
    private readonly transcript: Transcript,
    private readonly clientHsTraffic: Uint8Array,
    private readonly clientApTraffic: Uint8Array,
    private readonly exporter: Uint8Array,
    private readonly observe?: SecretObserver,
  ) {}

  handleApplicationData(): Transition {
    // 0-RTT is never accepted, so application data before Finished is a protocol violation.
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before client Finished');
  }

  handleHandshake(msg: HandshakeMessage): Transition {
    // TODO(client auth): Certificate / CertificateVerify from the client slot in before Finished.
    if (msg.type !== HandshakeType.finished) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected Finished, got handshake type ${msg.type}`);
    }
    const received = parseFinished(msg.body, this.suite.hashLength);
    const expected = finishedVerifyData(this.suite, this.clientHsTraffic, this.transcript.current());
    const ok = ctEqual(received, expected);
    wipe(expected);
    if (!ok) throw tlsError('ERR_TLS_DECRYPT_ERROR', 'client Finished does not verify');
    this.transcript.add(msg.raw); // kept for "res master" once tickets exist
    const clientApKeys = trafficKeys(this.suite, this.clientApTraffic);
    this.observe?.('c_ap_key', clientApKeys.key);
    this.observe?.('c_ap_iv', clientApKeys.iv);
    this.exporterHandedOver = true;
    // ExpectTraffic keeps (a copy of) the client application traffic secret to ratchet it on KeyUpdate.
    const next = new ExpectTraffic(this.suite, this.clientApTraffic.slice());
    this.wipe();
    return {
      next,
      effects: [
        { kind: 'installReadKeys', keys: clientApKeys },
        { kind: 'exporterSecret', secret: this.exporter },
        { kind: 'handshakeComplete' },
      ],
    };
  }

  wipe(): void {
    wipe(this.clientHsTraffic, this.clientApTraffic);
    if (!this.exporterHandedOver) wipe(this.exporter);
  }
}
