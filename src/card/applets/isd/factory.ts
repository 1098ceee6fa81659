/**
 * card/applets/isd/factory: factory personalisation, accepted only in lifecycle OP_READY and
 * without secure messaging (the factory link is trusted; no SCP03 key exists yet) —
 * FactorySetUid (BF30), FactoryGenerateAttestationKey (BF31: a P-256 key generated in the card,
 * answered with its SPKI and a CSR it signed, subject CN = UID in hex), FactoryInstallAttestationChain
 * (BF32: the manufacturer-signed chain for that key), FactoryPutKeys (BF33: the factory SCP03 key
 * set in clear). SET STATUS 80 F0 80 0F (status.ts) then seals the card: SECURED, and these
 * functions are refused for ever. Byte layouts: docs/admin-protocol.md §8. imports bytes/, gp/,
 * gp/admin, isd siblings, node:crypto.
 */
import { generateKeyPairSync } from 'node:crypto';
import { toHex, wipe } from '../../../bytes/index.js';
import { sha256 } from '../../../gp/admin/attestation.js';
import { Field, Fn, IsdSw, KeyAlg, UID_LENGTH } from '../../../gp/admin/constants.js';
import { all, fieldList, opt } from '../../../gp/admin/fields.js';
import { isAesKeyLength } from '../../../gp/aes.js';
import { staticKeys } from '../../../gp/keys.js';
import { isScp03Kvn } from '../../../gp/params.js';
import { putKeyResponseData } from '../../../gp/put-key.js';
import { buildCsr, commonNameSubject } from './der.js';
import { refuse } from './errors.js';
import { attestationSign, type FunctionHandler } from './functions-common.js';
import { checkChain } from './x509.js';

const setUid: FunctionHandler = {
  rule: { [Field.uid]: 1 },
  run(ctx, f) {
    const uid = opt(f, Field.uid);
    if (!uid || uid.length !== UID_LENGTH) refuse(IsdSw.wrongData, `UID must be ${UID_LENGTH} bytes`);
    ctx.platform.transaction((d) => {
      d.record.uid = uid.slice();
      d.record.attestation = undefined; // a key certified for another UID would be wrong
    });
    return fieldList([[Field.uid, uid]]);
  },
};

const generateAttestationKey: FunctionHandler = {
  rule: {},
  run(ctx) {
    return ctx.platform.transaction((d) => {
      const r = d.record;
      if (!r.uid) refuse(IsdSw.conditionsNotSatisfied, 'set the UID first');
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const exported = privateKey.export({ format: 'der', type: 'pkcs8' });
      const pkcs8 = new Uint8Array(exported);
      wipe(exported);
      const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
      r.attestation = { pkcs8, spki, chain: [] };
      const csr = buildCsr({ subject: commonNameSubject(toHex(r.uid)), spki, algorithm: KeyAlg.p256, sign: (tbs) => attestationSign(r, tbs) });
      return fieldList([
        [Field.spki, spki],
        [Field.csr, csr],
      ]);
    });
  },
};

const installAttestationChain: FunctionHandler = {
  rule: { [Field.certificate]: 8 },
  run(ctx, f) {
    const certs = all(f, Field.certificate).map((c) => c.slice());
    return ctx.platform.transaction((d) => {
      const a = d.record.attestation;
      if (!a) refuse(IsdSw.conditionsNotSatisfied, 'generate the attestation key first');
      checkChain(certs, a.spki, undefined, 'attestation chain');
      d.record.attestation = { ...a, chain: certs };
      return fieldList([[Field.digest, sha256(certs[0]!)]]);
    });
  },
};

const putFactoryKeys: FunctionHandler = {
  rule: { [Field.factoryKeySet]: 1 },
  run(ctx, f) {
    const v = opt(f, Field.factoryKeySet);
    const len = v ? (v.length - 1) / 3 : 0;
    if (!v || !Number.isInteger(len) || !isAesKeyLength(len) || !isScp03Kvn(v[0]!)) {
      refuse(IsdSw.wrongData, 'factory key set: KVN (30..3F) ‖ three AES keys of one length');
    }
    const keys = staticKeys(v[0]!, v.subarray(1, 1 + len), v.subarray(1 + len, 1 + 2 * len), v.subarray(1 + 2 * len));
    wipe(v);
    ctx.platform.transaction((d) => {
      d.record.keySets = [keys];
    });
    return fieldList([[Field.keyCheckValues, putKeyResponseData(keys)]]);
  },
};

export const FACTORY_HANDLERS: ReadonlyMap<number, FunctionHandler> = new Map([
  [Fn.factorySetUid, setUid],
  [Fn.factoryGenerateAttestationKey, generateAttestationKey],
  [Fn.factoryInstallAttestationChain, installAttestationChain],
  [Fn.factoryPutKeys, putFactoryKeys],
]);
