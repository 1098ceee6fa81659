/**
 * Alert messages (RFC 8446 §6).
 *
 *   enum { warning(1), fatal(2), (255) } AlertLevel;
 *   struct { AlertLevel level; AlertDescription description; } Alert;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { tlsError } from '../errors.js';

export const AlertLevel = { warning: 1, fatal: 2 } as const;

export interface Alert {
  readonly level: number;
  readonly description: number;
}

export function encodeAlert(level: number, description: number): Uint8Array {
  return Uint8Array.of(level, description);
}

export function parseAlert(b: Uint8Array): Alert {
  if (b.length !== 2) throw tlsError('ERR_TLS_DECODE', `alert of ${b.length} bytes`);
  const level = b[0]!;
  if (level !== AlertLevel.warning && level !== AlertLevel.fatal) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `alert level ${level}`);
  return { level, description: b[1]! };
}
