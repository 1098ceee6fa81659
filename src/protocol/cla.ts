/**
 * protocol/cla: the class byte — which logical channel a command is on, and in which class
 * (ISO 7816-4 §5.4.1, GlobalPlatform Card Spec 2.3 §11.1.4, setls's proprietary coding as Java
 * Card codes proprietary classes). Pure data and functions; imports nothing.
 *
 *   00–0F  first interindustry   0 0 0 b5 SM SM ch ch    channels 0–3; b5 (10) ISO command chaining
 *   40–7F  further interindustry 0 1 SM b5 ch ch ch ch   channels 4–19; SM = b6 (20)
 *   80–87  GlobalPlatform        1 0 0 0 0 SM ch ch      channels 0–3 (84–87: GP secure messaging)
 *   A0–A3  setls proprietary     1 0 1 0 0 0 ch ch       channels 0–3
 *   C0–CF  GlobalPlatform        1 1 0 0 ch ch ch ch     channels 4–19
 *   E0–EF  setls proprietary / GlobalPlatform with SM    channels 4–19 (the selected applet reads it)
 *
 * E0–EF means "setls proprietary, channel 4+n" to the setls applet and "GlobalPlatform with secure
 * messaging, channel 4+n" to a security domain: both decode to the same channel, and the applet
 * selected there interprets the class.
 */

/** The interindustry class on channel 0 (SELECT, MANAGE CHANNEL, GET RESPONSE). */
export const CLA_ISO = 0x00;
/** The setls applet's proprietary class on channel 0. */
export const CLA_PROPRIETARY = 0xa0;
/** The GlobalPlatform class on channel 0 (security domain commands). */
export const CLA_GP = 0x80;

/** ISO 7816-4 logical channels (docs/apdu-protocol.md §1.1). */
export const Channels = {
  /** The most the class byte can address: 0–3 (first codings) and 4–19 (further codings). */
  limit: 20,
  /** MANAGE CHANNEL (interindustry class). */
  insManageChannel: 0x70,
  /** MANAGE CHANNEL P1: open (00) / close (80). */
  open: 0x00,
  close: 0x80,
  /** Logical channel not supported / not open. */
  swChannelNotSupported: 0x6881,
  /** Function not supported (no channel left). */
  swNoChannelLeft: 0x6a81,
} as const;

/**
 * How a class byte is coded: `iso` interindustry (00–0F, 40–7F), `proprietary` setls (A0–A3,
 * E0–EF), `gp` GlobalPlatform (80–87, C0–CF). E0–EF is reported as `proprietary` (see the header).
 */
export type ClaKind = 'iso' | 'proprietary' | 'gp';

/** A decoded class byte. */
export interface DecodedCla {
  readonly kind: ClaKind;
  /** Logical channel 0–19. */
  readonly channel: number;
  /** Secure messaging indicated (ISO SM bits, GP 84–87; E0–EF under GP's reading). */
  readonly sm: boolean;
  /** ISO command chaining (b5, interindustry classes only): more segments follow. */
  readonly chaining: boolean;
}

const decoded: (DecodedCla | undefined)[] = [];
for (let cla = 0; cla < 256; cla++) decoded.push(decodeUncached(cla));

function decodeUncached(cla: number): DecodedCla | undefined {
  if ((cla & 0xe0) === 0x00) {
    // first interindustry 000x xxxx: SM b4 b3, chaining b5, channel b2 b1
    return { kind: 'iso', channel: cla & 0x03, sm: (cla & 0x0c) !== 0, chaining: (cla & 0x10) !== 0 };
  }
  if ((cla & 0xc0) === 0x40) return { kind: 'iso', channel: 4 + (cla & 0x0f), sm: (cla & 0x20) !== 0, chaining: (cla & 0x10) !== 0 };
  if ((cla & 0xfc) === 0xa0) return { kind: 'proprietary', channel: cla & 0x03, sm: false, chaining: false };
  if ((cla & 0xf0) === 0xe0) return { kind: 'proprietary', channel: 4 + (cla & 0x0f), sm: false, chaining: false };
  if ((cla & 0xf8) === 0x80) return { kind: 'gp', channel: cla & 0x03, sm: (cla & 0x04) !== 0, chaining: false };
  if ((cla & 0xf0) === 0xc0) return { kind: 'gp', channel: 4 + (cla & 0x0f), sm: false, chaining: false };
  return undefined;
}

/**
 * Decodes a class byte (table lookup; the objects are shared and frozen in spirit: never mutate).
 * Undefined for classes with no channel coding: 20–3F, 88–9F, A4–BF, D0–DF, F0–FF.
 */
export function decodeCla(cla: number): DecodedCla | undefined {
  return decoded[cla & 0xff];
}

/** The plain class byte (no SM, no chaining) of a kind on a channel (0–19). */
export function encodeCla(kind: ClaKind, channel: number): number {
  if (!Number.isInteger(channel) || channel < 0 || channel >= Channels.limit) throw new RangeError(`logical channel must be 0..${Channels.limit - 1}`);
  const first = kind === 'iso' ? CLA_ISO : kind === 'gp' ? CLA_GP : CLA_PROPRIETARY;
  if (channel < 4) return first | channel;
  const further = kind === 'iso' ? 0x40 : kind === 'gp' ? 0xc0 : 0xe0;
  return further | (channel - 4);
}
