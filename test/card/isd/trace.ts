/**
 * The captured admin session of docs/admin-protocol.md §10: the security domain of a real
 * EmulatedCard (its card OS: 61xx and GET RESPONSE; its sealed store), made deterministic (fixed
 * UID, keys, sequence counter, card time floor, host challenge; no signature, no key generation),
 * driven through real APDUs by an off-card Scp03Host, each exchange recorded with its plain form,
 * and its rendering into the doc's trace section. scripts/render-admin-trace.ts writes it;
 * admin-trace.test.ts keeps the doc in step with the code.
 */
import { concat, fromHex, toHex } from '../../../src/bytes/index.js';
import { AdminRequest, ISD_AID } from '../../../src/gp/admin/index.js';
import { Scp03Host } from '../../../src/gp/host.js';
import { staticKeys } from '../../../src/gp/keys.js';
import { buildPutKey } from '../../../src/gp/put-key.js';
import { buildStoreData } from '../../../src/gp/store-data.js';
import { APPLET_AID } from '../../../src/protocol/index.js';
import { blankRecord } from '../../../src/card/applets/isd/index.js';
import { RealCard } from './cards.js';

export const BEGIN = '<!-- admin-trace:begin -->';
export const END = '<!-- admin-trace:end -->';

export interface TraceStep {
  readonly step: string;
  readonly plainC?: string;
  /** The APDUs on the wire: the command, then any GET RESPONSE the host sent for it (61xx). */
  readonly wire: readonly { readonly c: string; readonly r: string }[];
  readonly plainR?: string;
}

const seq = (n: number, len = 16) => Uint8Array.from({ length: len }, (_, i) => (n + i) & 0xff);
export const TRACE_KEYS = staticKeys(0x30, seq(0x40), seq(0x50), seq(0x60));
export const TRACE_NEW_KEYS = staticKeys(0x31, seq(0x70), seq(0x80), seq(0x90));
export const TRACE_UID = fromHex('5e71500000000000000000000000c0de');

/** The card time of the capture (its time floor; no host time is ever given). */
export const TRACE_TIME = 1_760_000_000;

export function captureAdminTrace(): TraceStep[] {
  const rec = blankRecord();
  rec.lifecycle = 0x0f;
  rec.uid = TRACE_UID;
  rec.keySets = [TRACE_KEYS];
  rec.sequenceCounter = 5;
  const card = RealCard.withRecord(rec, {}, { lastTime: TRACE_TIME });
  try {
    return capture(card);
  } finally {
    card.dispose();
  }
}

function capture(card: RealCard): TraceStep[] {
  const steps: TraceStep[] = [];
  /** Sends one logical command; the wire exchanges it took (61xx followed). */
  const send = (c: Uint8Array): { r: Uint8Array; wire: { c: string; r: string }[] } => {
    const at = card.log.length;
    const r = card.transmit(c);
    return { r, wire: card.log.slice(at).map((e) => ({ c: toHex(e.c), r: toHex(e.r) })) };
  };
  const plain = (step: string, c: Uint8Array) => steps.push({ step, wire: send(c).wire });
  plain('SELECT the security domain', concat(fromHex('00A4040008'), ISD_AID, fromHex('00')));
  plain('GET DATA DF52: the next sequence counter (no secure messaging)', fromHex('80CADF5200'));
  plain('GET DATA 00E0: key information template', fromHex('80CA00E000'));
  const host = new Scp03Host({ keys: TRACE_KEYS, sdAid: ISD_AID, random: () => fromHex('0001020304050607') });
  const iu = send(host.initializeUpdate());
  steps.push({ step: 'INITIALIZE UPDATE, KVN 30', wire: iu.wire });
  host.processInitializeUpdateResponse(iu.r);
  const ea = send(host.externalAuthenticate(0x33));
  steps.push({ step: 'EXTERNAL AUTHENTICATE, security level 33', wire: ea.wire });
  host.processExternalAuthenticateResponse(ea.r);
  const wrapped = (step: string, p: Uint8Array) => {
    const { r, wire } = send(host.wrap(p));
    const u = host.unwrap(r);
    steps.push({ step, plainC: toHex(p), wire, plainR: toHex(concat(u.data, Uint8Array.of(u.sw >> 8, u.sw & 0xff))) });
  };
  wrapped('PUT KEY: KVN 30 replaced by KVN 31', buildPutKey(host.dek!, TRACE_NEW_KEYS, { replaceKvn: 0x30 }));
  wrapped('STORE DATA BF29 PutRevocationList {8B 00000001, 8C 0BADCAFE}', buildStoreData(AdminRequest.putRevocationList({ number: 1, serials: [fromHex('0badcafe')] }))[0]!);
  wrapped('SET STATUS: lock the TLS applet', concat(fromHex('80F04080'), Uint8Array.of(APPLET_AID.length), APPLET_AID));
  wrapped('GET STATUS 40: the applets', fromHex('80F24002024F0000'));
  wrapped('STORE DATA BF20 GetCardInfo', buildStoreData(AdminRequest.getCardInfo())[0]!);
  wrapped('STORE DATA BF2C ResetPin, user PIN "24681357" (it only ever crosses encrypted)', buildStoreData(AdminRequest.resetPin({ pin: 'user', newPin: fromHex('3234363831333537') }))[0]!);
  return steps;
}

function spaced(hex: string): string {
  return hex.toUpperCase().replace(/(..)(?!$)/g, '$1 ');
}

function lines(prefix: string, hex: string): string[] {
  const bytes = spaced(hex).split(' ');
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 24) out.push((i === 0 ? prefix : ' '.repeat(prefix.length)) + bytes.slice(i, i + 24).join(' '));
  return out;
}

export function renderAdminTrace(steps: readonly TraceStep[]): string {
  const out: string[] = [BEGIN, '', '```'];
  steps.forEach((s, i) => {
    out.push(`# ${i + 1}. ${s.step}`);
    if (s.plainC) out.push(...lines('   plain ', s.plainC));
    for (const w of s.wire) {
      out.push(...lines('>> ', w.c));
      out.push(...lines('<< ', w.r));
    }
    if (s.plainR) out.push(...lines('   plain ', s.plainR));
    out.push('');
  });
  out.pop();
  out.push('```', '', END);
  return out.join('\n');
}

/** The doc with its trace section replaced by the current capture. */
export function withTrace(doc: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < 0) throw new Error('docs/admin-protocol.md lacks the admin-trace markers');
  return doc.slice(0, a) + renderAdminTrace(captureAdminTrace()) + doc.slice(b + END.length);
}
