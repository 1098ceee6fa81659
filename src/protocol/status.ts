/**
 * protocol/status: the status words of the setls applet beyond ISO 7816-4's (which are in
 * apdu/status.ts): Urien's EAP ones, setls's "handshake done" and the lifecycle refusals of the
 * security domain's locks (GlobalPlatform's), with their names for traces and error messages.
 * Pure data; imports nothing.
 */

export const SetlsSw = {
  /** draft-urien-eap-smartcard: EAP packet silently discarded. */
  eapDiscarded: 0x7000,
  /** draft-urien-eap-smartcard: authentication failure. setls: the data is the last EAP-Request (the alert). */
  authFailure: 0x7001,
  /**
   * setls (after draft-urien-tls-se's "session opened"): the handshake is complete and the data is an
   * EAP-Request with the server's last records (TLS 1.2 CCS + Finished, TLS 1.3 tickets): deliver them,
   * then ACK; the card answers EAP-Success.
   */
  handshakeDone: 0x9001,
  /**
   * GlobalPlatform's "card life cycle state is CARD_LOCKED" warning (design brief §8.3): the security
   * domain has locked this applet (SET STATUS 40 80) or the card (CARD_LOCKED): SELECT is refused,
   * the channel's selection unchanged. Commands to a locked applet already selected answer 6985.
   */
  locked: 0x6283,
  /** GlobalPlatform's "function not supported": the card is TERMINATED; only its security domain answers. */
  terminated: 0x6a81,
} as const;

/** Names of SetlsSw, for apdu's describeSw(sw, SETLS_SW_NAMES). */
export const SETLS_SW_NAMES: Readonly<Record<number, string>> = {
  [SetlsSw.eapDiscarded]: 'EAP packet discarded',
  [SetlsSw.authFailure]: 'authentication failure',
  [SetlsSw.handshakeDone]: 'handshake complete, last records attached',
  [SetlsSw.locked]: 'applet or card locked by the security domain',
  [SetlsSw.terminated]: 'card terminated',
};
