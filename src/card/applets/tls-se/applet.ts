/**
 * card/applets/tls-se/applet: Urien's TLS-SE applet on the card OS (AID 01 02 03 04 05 00;
 * docs/tls-se.md): a raw applet — it answers every APDU of a channel where it is selected itself,
 * including its own output chaining (SEND = GET RESPONSE with `9Fxx`, channel.ts) — wired to the
 * card services: the TLS engine, the card's identities (by SNI, else the channel's default
 * identity), the card's PINs (shared with the setls applet, verified per channel) and the PSKs
 * installed with SET-KEY (card RAM: lost when the card process ends). The security domain's rules
 * apply as to the setls applet (services/security-domain.ts): locks, access_denied for a locked slot
 * identity, the operator's client CAs and deny-list, one audit entry per session.
 *
 * Secrets: the SET-KEY PSKs (wiped by `close()`), each channel's session (channel.ts).
 * imports bytes/, apdu/, protocol/ and card/.
 */
import { toHex, wipe } from '../../../bytes/index.js';
import { SW } from '../../../apdu/index.js';
import { TLS_SE_AID } from '../../../protocol/index.js';
import type { TlsIdentity } from '../../../tls/api.js';
import type { Applet, AppletCommand, ChannelContext, Reply } from '../../os/applet.js';
import type { CardServices } from '../../services/services.js';
import type { TlsSessionFacts } from '../../services/security-domain.js';
import { TlsSeChannel } from './channel.js';
import { tlsSeEngineConfig } from './config.js';

const EMPTY = new Uint8Array(0);

export class TlsSeApplet implements Applet {
  readonly aid = TLS_SE_AID;
  readonly name = 'tls-se';
  private readonly channels = new Map<number, TlsSeChannel>();
  /** SET-KEY PSKs (identity hex → key), card RAM only. */
  private readonly psks = new Map<string, Uint8Array>();

  constructor(private readonly s: CardServices) {}

  /** Any SELECT of the applet starts its session afresh (no answer data). */
  select(ch: ChannelContext): Reply {
    this.channel(ch).reset();
    return { data: EMPTY, sw: SW.ok };
  }

  deselect(ch: ChannelContext): void {
    this.channels.get(ch.number)?.reset();
  }

  process(cmd: AppletCommand, ch: ChannelContext): Reply {
    return this.channel(ch).process(cmd);
  }

  reset(ch: ChannelContext): void {
    this.channels.get(ch.number)?.reset();
    this.channels.delete(ch.number);
  }

  close(): void {
    for (const k of this.psks.values()) wipe(k);
    this.psks.clear();
  }

  private channel(ch: ChannelContext): TlsSeChannel {
    let c = this.channels.get(ch.number);
    if (!c) {
      c = this.newChannel(ch);
      this.channels.set(ch.number, c);
    }
    return c;
  }

  /** The applet's state on one channel, wired to the card services (the channel's PIN status and default identity). */
  private newChannel(ch: ChannelContext): TlsSeChannel {
    const s = this.s;
    const sd = s.securityDomain;
    /** The identity that serves the current session, and its audit facts once the handshake completed. */
    let served: string | undefined;
    let facts: TlsSessionFacts | undefined;
    return new TlsSeChannel({
      newEngine: () => {
        const f = s.tls.engineFactory();
        const config = tlsSeEngineConfig({
          entropy: s.tls.entropy(() => s.time.now() * 1000),
          selectIdentity: (serverName): TlsIdentity | undefined => {
            const sealed = sd.sealed;
            const rec = s.identities.select(serverName, ch, sealed ? sd.usable : undefined);
            served = rec?.label;
            return rec ? s.identities.forEngine(rec, sealed ? sd.engineRules(rec) : undefined) : undefined;
          },
          alpn: s.config.policy.alpn,
          psks: this.psks,
        });
        return f(config);
      },
      isVerified: (which) => s.pins.isVerified(ch, which),
      verifyPin: (which, ascii) => s.pins.verifyText(ch, which, ascii),
      setPsk: (identity, key) => {
        const k = toHex(identity);
        wipe(this.psks.get(k));
        this.psks.set(k, key.slice());
      },
      sessionOpened: (engine) => {
        const info = engine.info;
        if (info && sd.auditing) facts = sd.sessionFacts(served, info, (label) => engine.exportKeyingMaterial(label, undefined, 32));
      },
      sessionEnded: () => {
        if (facts) sd.logSession(facts, false);
        facts = undefined;
        served = undefined;
      },
    });
  }
}
