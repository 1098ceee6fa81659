/**
 * gp/cla: the class byte as SCP03 sees it (ISO 7816-4 §5.4.1, GP Card Spec 2.3 §11.1.4).
 *
 *   first interindustry   b8 0 0 b5 SM SM ch ch   channels 0–3, `00`–`03` ISO, `80`–`83` GP;
 *                                                  SM bits `01` (`04`) = GP proprietary SM
 *   further interindustry b8 1 SM b5 ch ch ch ch   channels 4–19 (channel − 4 in b4..b1),
 *                                                  `40`–`4F` ISO, `C0`–`CF` GP; SM = b6 (`20`)
 *
 * b5 (`10`) is ISO command chaining, refused under SCP03 (GP chains with STORE DATA's P1/P2).
 * The C-MAC is computed over the class byte "with the logical channel number set to zero, bit 4
 * cleared and bit 3 set" (GP Amendment D): `(CLA & 80) | 04` — the first-interindustry coding of
 * channel 0, whichever coding the channel used (as Petr Tobiska's asterix does). The channel bits
 * therefore travel outside the MAC: a relay may move a session to another channel only to find no
 * session there (the card binds a session to the channel INITIALIZE UPDATE arrived on).
 * Pure functions; imports nothing.
 */

export interface ClaInfo {
  /** Logical channel 0..19. */
  readonly channel: number;
  /** GP proprietary secure messaging indicated. */
  readonly sm: boolean;
  /** b8: proprietary (GP) class rather than interindustry. */
  readonly proprietary: boolean;
  /** Further interindustry coding (channels 4–19). */
  readonly further: boolean;
}

/**
 * The SCP03 reading of a class byte, or undefined for classes SCP03 cannot carry: `FF`, the
 * reserved/proprietary `x01x xxxx` range (e.g. `A0`), ISO secure messaging (`08`/`0C`), command
 * chaining.
 */
export function parseCla(cla: number): ClaInfo | undefined {
  if (!Number.isInteger(cla) || cla < 0 || cla > 0xfe) return undefined;
  if ((cla & 0x10) !== 0) return undefined; // command chaining
  const proprietary = (cla & 0x80) !== 0;
  if ((cla & 0x40) === 0) {
    if ((cla & 0x20) !== 0) return undefined; // x01x xxxx: reserved (b8=0) or not GP's coding (b8=1)
    const smBits = (cla >> 2) & 0x03;
    if (smBits === 2 || smBits === 3) return undefined; // ISO 7816-4 secure messaging, not SCP03
    return { channel: cla & 0x03, sm: smBits === 1, proprietary, further: false };
  }
  return { channel: 4 + (cla & 0x0f), sm: (cla & 0x20) !== 0, proprietary, further: true };
}

/** The class byte for `channel` (0..19), GP (`proprietary`) or ISO, with or without SM. */
export function claFor(channel: number, opts: { proprietary?: boolean; sm?: boolean } = {}): number {
  if (!Number.isInteger(channel) || channel < 0 || channel > 19) throw new RangeError(`logical channel ${channel} out of 0..19`);
  const b8 = opts.proprietary === false ? 0x00 : 0x80;
  if (channel < 4) return b8 | (opts.sm ? 0x04 : 0x00) | channel;
  return b8 | 0x40 | (opts.sm ? 0x20 : 0x00) | (channel - 4);
}

/** `cla` with the SM indication set, channel and coding kept. */
export function withSm(info: ClaInfo, cla: number): number {
  return info.further ? cla | 0x20 : cla | 0x04;
}

/** `cla` with the SM indication cleared, channel and coding kept. */
export function withoutSm(info: ClaInfo, cla: number): number {
  return info.further ? cla & ~0x20 & 0xff : cla & ~0x04 & 0xff;
}

/** The class byte that enters the C-MAC: channel zero, GP proprietary SM, b8 kept. */
export function macCla(cla: number): number {
  return (cla & 0x80) | 0x04;
}
