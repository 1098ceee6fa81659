/**
 * The JSON state writer of state versions ≤ 3 (the code before format v4), kept for tests only: it
 * makes the v3 documents the card must still read (migration). src/ only reads JSON states now.
 */
import { wipe } from '../../src/bytes/index.js';
import { policyToJson } from '../../src/card/policy.js';
import type { PinRecord } from '../../src/card/pins.js';
import type { CardState } from '../../src/card/state.js';

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');

/** The v3 JSON document of `s` (an object, so tests can edit it into older versions). */
export function stateV3Doc(s: CardState): Record<string, unknown> & { identities: Record<string, unknown>[]; policy: Record<string, unknown> } {
  const pin = (p: PinRecord) => ({ salt: b64(p.salt), hash: b64(p.hash), tries: p.tries, max: p.max });
  const identities = s.identities.map((i) => {
    const pkcs8 = i.privateKey.export({ format: 'der', type: 'pkcs8' });
    const text = pkcs8.toString('base64');
    wipe(pkcs8);
    return {
      label: i.label,
      keyType: i.keyType,
      pkcs8: text,
      spki: b64(i.spki),
      chain: i.chain.map(b64),
      clientAuth: i.clientAuth,
      exportAllowed: i.exportAllowed,
      exporterLabels: [...i.exporterLabels],
      trustAnchors: i.trustAnchors.map(b64),
    };
  });
  return {
    format: 'setls-card-state',
    version: 3,
    serial: Buffer.from(s.serial).toString('hex'),
    lastTime: s.lastTime,
    pins: { user: pin(s.pins.user), operator: pin(s.pins.operator), puk: pin(s.pins.puk) },
    identities,
    policy: policyToJson(s.policy) as unknown as Record<string, unknown>,
    psks: s.psks.map((p) => ({ identity: b64(p.identity), key: b64(p.key), hash: p.hash })),
    ...(s.ticketKey ? { ticketKey: { id: b64(s.ticketKey.id), key: b64(s.ticketKey.key) } } : {}),
  };
}

/** The v3 JSON bytes of `s`, as the card wrote them before format v4. */
export function serializeStateV3(s: CardState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(stateV3Doc(s)));
}
