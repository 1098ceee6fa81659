/**
 * protocol/: what card and host agree on — the class byte and logical channels, the setls applet's
 * INS codes, P1/P2 values and flags, TLV tags, status words, PIN padding, the session-info, alert
 * and export-blob codecs, the TLS-SE applet's codes, command names and the ATR. Written once here;
 * card/, host/, transport/ (and servers/, cli/) import it. Pure data and codecs: imports bytes/ only
 * (scripts/check-deps.ts).
 */
export * from './cla.js';
export * from './setls.js';
export * from './tags.js';
export * from './status.js';
export * from './pin.js';
export * from './answer-reader.js';
export * from './session-info.js';
export * from './export-blob.js';
export * from './tls-se.js';
export * from './names.js';
export * from './atr.js';
export * from './isd.js';
