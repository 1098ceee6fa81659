/**
 * card/applets/security-domain: the security domain (card/applets/isd, AID A0 00 00 01 51 00 00 00)
 * as an applet of the card OS. It is a raw applet — SCP03 needs each command as it arrived (the
 * C-MAC covers its exact bytes) — whose replies the OS cuts to Ne (`61xx`, GET RESPONSE), so long
 * answers (GET DATA DF51, ReadAuditLog) reach any reader. Selectable on any logical channel, each
 * with its own SCP03 session, while the TLS applets serve on the others.
 *
 * A card without a security domain record (made before it existed) answers its SELECT with 6A82, as
 * if it were not there. Power: a card reset (`EmulatedCard.reset`, a vpcd reconnect) is a power cycle
 * for it (every session ends, the count of failed authentications starts again at 0), as for every
 * other applet's RAM; card object creation is the first power-on.
 *
 * Secrets: the ISD applet's per-channel session keys (wiped by `reset`). imports apdu/, protocol/, card/.
 */
import { SW } from '../../apdu/index.js';
import { ISD_AID, SelectP2 } from '../../protocol/index.js';
import { CardError } from '../errors.js';
import type { Applet, AppletCommand, ChannelContext, Reply } from '../os/applet.js';
import type { CardServices } from '../services/services.js';
import { IsdApplet, type IsdOptions, type ManagedApplet } from './isd/index.js';
import { cardIsdPlatform } from './isd-platform.js';

const EMPTY = new Uint8Array(0);

export class SecurityDomainApplet implements Applet {
  readonly aid = ISD_AID;
  readonly name = 'isd';
  readonly responses = 'os' as const;
  /** The security domain itself (tests read its session state and failed-authentication count). */
  readonly isd: IsdApplet;

  constructor(
    private readonly s: CardServices,
    applets: () => readonly ManagedApplet[],
    opts: IsdOptions = {},
  ) {
    this.isd = new IsdApplet(cardIsdPlatform(s, applets), opts);
    this.isd.powerOn();
  }

  select(ch: ChannelContext, p2: number): Reply {
    if (!this.s.store.state.isd) throw new CardError('ERR_CARD_NOT_FOUND', 'this card has no security domain (made before it existed)', SW.notFound);
    const r = this.isd.select(ch.number);
    return p2 === SelectP2.noAnswer ? { data: EMPTY, sw: r.sw } : r;
  }

  deselect(ch: ChannelContext): void {
    this.isd.reset(ch.number);
  }

  process(cmd: AppletCommand, ch: ChannelContext): Reply {
    return this.isd.process(cmd.raw, ch.number);
  }

  reset(ch: ChannelContext): void {
    this.isd.reset(ch.number);
  }

  powerOn(): void {
    this.isd.powerOn();
  }

  close(): void {
    this.isd.powerOn(); // every session's keys wiped
  }
}
