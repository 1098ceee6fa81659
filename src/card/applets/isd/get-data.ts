/**
 * card/applets/isd/get-data: the public data of the security domain — the FCI answered to SELECT
 * and GET DATA (with or without secure messaging): card recognition data (66), key information
 * template (E0), UID (DF50), attestation certificate chain (DF51), next sequence counter (DF52),
 * lifecycle data (9F7F). Byte layouts: docs/admin-protocol.md §3. imports bytes/, gp/, gp/admin.
 */
import { concat, encodeBerTlv, encodeBerTlvs, fromHex } from '../../../bytes/index.js';
import { GetDataTag, IsdSw } from '../../../gp/admin/constants.js';
import type { RawCommand } from '../../../gp/command-apdu.js';
import { refuse } from './errors.js';
import { ok, type CommandContext, type IsdResponse } from './context.js';
import type { IsdRecord } from './record.js';

/** GP card recognition data (GP Card Spec 2.3 §H.2): GP 2.3, SCP03 with i = 70. */
const CARD_RECOGNITION = encodeBerTlvs([
  { tag: 0x06, value: fromHex('2A864886FC6B01') }, // {globalPlatform 1}: card recognition data
  { tag: 0x60, value: encodeBerTlv(0x06, fromHex('2A864886FC6B020203')) }, // {globalPlatform 2 2 3}: GP 2.3
  { tag: 0x63, value: encodeBerTlv(0x06, fromHex('2A864886FC6B03')) }, // {globalPlatform 3}: card identification scheme
  { tag: 0x64, value: encodeBerTlv(0x06, fromHex('2A864886FC6B040370')) }, // {globalPlatform 4 3 70}: SCP03, i = 70
]);

/** The FCI of SELECT: 6F { 84 AID, A5 { 73 card recognition data, 9F65 01 FF (max command data) } }. */
export function fci(aid: Uint8Array): Uint8Array {
  return encodeBerTlv(
    0x6f,
    encodeBerTlvs([
      { tag: 0x84, value: aid },
      {
        tag: 0xa5,
        value: encodeBerTlvs([
          { tag: 0x73, value: CARD_RECOGNITION },
          { tag: 0x9f65, value: Uint8Array.of(0xff) },
        ]),
      },
    ]),
  );
}

function keyInformation(r: IsdRecord): Uint8Array {
  const items = r.keySets.flatMap((k) => [1, 2, 3].map((id) => ({ tag: 0xc0, value: Uint8Array.of(id, k.kvn, 0x88, k.enc.length) })));
  return encodeBerTlv(0xe0, encodeBerTlvs(items));
}

export function getData(ctx: CommandContext, c: RawCommand): IsdResponse {
  if (c.data.length !== 0) refuse(IsdSw.wrongLength, 'GET DATA carries no data');
  const tag = (c.p1 << 8) | c.p2;
  const r = ctx.platform.record();
  switch (tag) {
    case GetDataTag.cardData:
      return ok(encodeBerTlv(0x66, encodeBerTlv(0x73, CARD_RECOGNITION)));
    case GetDataTag.keyInformation:
      return ok(keyInformation(r));
    case GetDataTag.uid:
      if (!r.uid) refuse(IsdSw.referencedDataNotFound, 'no UID yet');
      return ok(encodeBerTlv(GetDataTag.uid, r.uid));
    case GetDataTag.attestationChain:
      if (!r.attestation || r.attestation.chain.length === 0) refuse(IsdSw.referencedDataNotFound, 'no attestation certificate yet');
      return ok(encodeBerTlv(GetDataTag.attestationChain, concat(...r.attestation.chain)));
    case GetDataTag.sequenceCounter: {
      const n = r.sequenceCounter;
      return ok(encodeBerTlv(GetDataTag.sequenceCounter, Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)));
    }
    case GetDataTag.lifecycle:
      return ok(
        encodeBerTlv(
          GetDataTag.lifecycle,
          encodeBerTlvs([{ tag: 0x9f70, value: Uint8Array.of(r.lifecycle) }, ...(r.uid ? [{ tag: 0x5a, value: r.uid }] : [])]),
        ),
      );
    default:
      return refuse(IsdSw.referencedDataNotFound, `no data object ${tag.toString(16)}`);
  }
}
