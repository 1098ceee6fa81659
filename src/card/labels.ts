/**
 * Identity and exporter labels: what the card accepts as a label (1–64 bytes of UTF-8 without
 * control characters) and as an exporter label (1–249 bytes), and decoding a label from APDU
 * bytes. No secrets. imports card/ siblings.
 */
import { Limits } from './constants.js';
import { cardErr } from './errors.js';

/** Exporter labels (PUT-IDENTITY-POLICY `42`, EXPORTER `60`): 1–249 bytes of UTF-8 without control characters. */
export function validExporterLabel(label: string): boolean {
  const n = new TextEncoder().encode(label).length;
  // eslint-disable-next-line no-control-regex
  return n >= 1 && n <= Limits.maxExporterLabel && !/[\u0000-\u001f\u007f]/.test(label);
}

/** Identity labels: 1–64 bytes of UTF-8 without control characters. */
export function validLabel(label: string): boolean {
  const n = new TextEncoder().encode(label).length;
  // eslint-disable-next-line no-control-regex
  return n >= 1 && n <= Limits.maxLabel && !/[\u0000-\u001f\u007f]/.test(label);
}

/** Decodes a label from APDU bytes; throws ERR_CARD_DATA (6A80) when it is not a valid label. */
export function decodeLabel(b: Uint8Array): string {
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw cardErr.data('identity label is not UTF-8');
  }
  if (!validLabel(s)) throw cardErr.data('identity label must be 1–64 bytes without control characters');
  return s;
}
