/**
 * agent/cla: the one byte the device agent may change — the logical-channel indication of CLA
 * (ISO 7816-4 §5.4.1). Scripts are written for the basic channel; the agent moves each C-APDU to the
 * channel it opened. GlobalPlatform computes the SCP03 C-MAC over the class byte with the channel
 * number set to zero and bit 3 set — `(CLA & 80) | 04` — so the move never breaks a MAC.
 *
 * Classes a script may use (all on channel 0):
 *   first interindustry   b8 0 0 b5 b4 b3 0 0   b4b3 = 00 no SM, 01 proprietary SM (GP's 84),
 *                                                10 ISO SM, header not processed; b5 = chaining
 *                         e.g. 00 04 08 10 80 84 88 90 94
 *   setls proprietary     1 0 1 b5 0 0 0 0      A0 (the setls applet's class, Java Card style)
 * Refused (undefined): further-interindustry classes (40–7F, C0–FF: already a channel ≥ 4), channel
 * bits set, ISO SM with an authenticated header (0C: no coding on channels 4–19), 20–3F (reserved).
 *
 * Moved to channel n:
 *   n = 0..3    CLA | n                                  (only b2 b1 change)
 *   n = 4..19   b8 | 40 | SM | b5 | (n − 4)              further interindustry: SM (b6 = 20) set for
 *                                                         b4b3 ≠ 00 or for A0; 84 → E0+, A0 → E0+, 80 → C0+
 * Pure functions; imports nothing.
 */

/** Logical channels the CLA coding can address. */
export const MAX_CHANNEL = 19;

/** True when `cla` is a basic-channel class the agent can move to every channel 1..19. */
export function isMovableCla(cla: number): boolean {
  if (!Number.isInteger(cla) || cla < 0 || cla > 0xff) return false;
  if ((cla & 0x40) !== 0) return false; // further interindustry: not channel 0
  if ((cla & 0x03) !== 0) return false; // a channel already
  const sm = cla & 0x0c;
  if (sm === 0x0c) return false; // ISO SM with authenticated header: not codable on channels 4–19
  if ((cla & 0x20) !== 0) return (cla & 0x80) !== 0 && sm === 0; // A0/B0 only; 20–3F reserved
  return true;
}

/** `cla` (a movable basic-channel class) moved to logical channel `channel` (0..19). */
export function moveCla(cla: number, channel: number): number {
  if (!isMovableCla(cla)) throw new RangeError(`CLA ${cla.toString(16).padStart(2, '0')} is not a basic-channel class the agent can move`);
  if (!Number.isInteger(channel) || channel < 0 || channel > MAX_CHANNEL) throw new RangeError(`logical channel ${channel} out of 0..${MAX_CHANNEL}`);
  if (channel < 4) return cla | channel;
  const sm = (cla & 0x2c) !== 0 ? 0x20 : 0x00;
  return (cla & 0x80) | 0x40 | sm | (cla & 0x10) | (channel - 4);
}

/** The logical channel a class byte addresses (both codings), as the card reads it. */
export function channelOfCla(cla: number): number {
  return (cla & 0x40) === 0 ? cla & 0x03 : 4 + (cla & 0x0f);
}

/** The interindustry class (00 family) on `channel`: for MANAGE CHANNEL, SELECT and GET RESPONSE. */
export function isoCla(channel: number): number {
  return moveCla(0x00, channel);
}
