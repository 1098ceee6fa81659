/**
 * card/applets/setls/requests: the command data of the setls applet's TLS 1.2 / mutual TLS / PSK /
 * exporter commands (docs/apdu-protocol.md §2.3): PUT-IDENTITY-POLICY, PUT-TRUST-ANCHOR, PUT-PSK and
 * EXPORTER request parsing (6A80 on anything malformed).
 *
 * Secrets: PSK keys parsed from PUT-PSK (fresh copies the caller stores or wipes).
 * imports bytes/, protocol/, card/ and node built-ins.
 */
import { X509Certificate } from 'node:crypto';
import { parseTlvs, readU16, wipe, type Tlv } from '../../../bytes/index.js';
import { ClientAuthCode, ExporterTag, IdentityPolicyTag, PskHashCode, PskOp, PskTag, TrustAnchorOp } from '../../../protocol/index.js';
import { Limits } from '../../constants.js';
import { cardErr } from '../../errors.js';
import { decodeLabel, validExporterLabel, type ClientAuth, type PskRecord } from '../../state.js';

function tlvs(data: Uint8Array, what: string): Tlv[] {
  if (data.length === 0) throw cardErr.data(`${what}: no TLV`);
  try {
    return parseTlvs(data);
  } catch (e) {
    throw cardErr.data(`${what} data is not a TLV sequence`, e);
  }
}

function utf8Text(v: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(v);
  } catch (e) {
    throw cardErr.data(`${what} is not UTF-8`, e);
  }
}

// ------------------------------------------------------------------ PUT-IDENTITY-POLICY

export interface IdentityPolicyChange {
  readonly label: string;
  readonly clientAuth?: ClientAuth;
  readonly exportAllowed?: boolean;
  /** New list of allowed exporter labels (one empty `42` = the empty list). */
  readonly exporterLabels?: readonly string[];
}

const CLIENT_AUTH: ReadonlyMap<number, ClientAuth> = new Map([
  [ClientAuthCode.none, 'none'],
  [ClientAuthCode.optional, 'optional'],
  [ClientAuthCode.required, 'required'],
]);

/**
 * PUT-IDENTITY-POLICY data: `80` label (required, once), `40` client auth (once), `41` export allowed
 * (once), `42` allowed exporter label (repeated; when present the list replaces the old one; a single
 * empty `42` clears it). Anything else → 6A80.
 */
export function parseIdentityPolicy(data: Uint8Array): IdentityPolicyChange {
  const items = tlvs(data, 'PUT-IDENTITY-POLICY');
  let label: string | undefined;
  let clientAuth: ClientAuth | undefined;
  let exportAllowed: boolean | undefined;
  let labels: string[] | undefined;
  let emptyLabel = false;
  for (const { tag, value } of items) {
    switch (tag) {
      case IdentityPolicyTag.label:
        if (label !== undefined) throw cardErr.data('PUT-IDENTITY-POLICY: label given twice');
        label = decodeLabel(value);
        break;
      case IdentityPolicyTag.clientAuth: {
        if (clientAuth !== undefined) throw cardErr.data('PUT-IDENTITY-POLICY: client auth given twice');
        const v = value.length === 1 ? CLIENT_AUTH.get(value[0]!) : undefined;
        if (!v) throw cardErr.data('PUT-IDENTITY-POLICY: client auth is one byte, 00 none, 01 optional or 02 required');
        clientAuth = v;
        break;
      }
      case IdentityPolicyTag.exportAllowed:
        if (exportAllowed !== undefined) throw cardErr.data('PUT-IDENTITY-POLICY: export policy given twice');
        if (value.length !== 1 || value[0]! > 1) throw cardErr.data('PUT-IDENTITY-POLICY: export allowed is one byte, 00 or 01');
        exportAllowed = value[0] === 1;
        break;
      case IdentityPolicyTag.exporterLabel: {
        labels ??= [];
        if (value.length === 0) {
          emptyLabel = true;
          break;
        }
        const l = utf8Text(value, 'exporter label');
        if (!validExporterLabel(l)) throw cardErr.data(`PUT-IDENTITY-POLICY: an exporter label is 1–${Limits.maxExporterLabel} bytes without control characters`);
        if (labels.includes(l)) throw cardErr.data('PUT-IDENTITY-POLICY: an exporter label is listed twice');
        labels.push(l);
        if (labels.length > Limits.maxExporterLabels) throw cardErr.data(`PUT-IDENTITY-POLICY: more than ${Limits.maxExporterLabels} exporter labels`);
        break;
      }
      default:
        throw cardErr.data(`PUT-IDENTITY-POLICY: unknown tag 0x${tag.toString(16)}`);
    }
  }
  if (emptyLabel && labels!.length > 0) throw cardErr.data('PUT-IDENTITY-POLICY: an empty 42 (clear) cannot be mixed with labels');
  if (label === undefined) throw cardErr.data('PUT-IDENTITY-POLICY: label (tag 80) missing');
  return {
    label,
    ...(clientAuth !== undefined ? { clientAuth } : {}),
    ...(exportAllowed !== undefined ? { exportAllowed } : {}),
    ...(labels !== undefined ? { exporterLabels: labels } : {}),
  };
}

// ------------------------------------------------------------------ PUT-TRUST-ANCHOR

/**
 * PUT-TRUST-ANCHOR data: labelLen(1) label ‖ CA certificate DER (P2 00, add) or labelLen(1) label
 * alone (P2 01, clear). The certificate must parse, be at most Limits.maxTrustAnchorBytes and be a
 * CA (basicConstraints cA) — 6A80 otherwise.
 */
export function parseTrustAnchorData(data: Uint8Array, op: number): { label: string; certificate?: Uint8Array } {
  if (data.length < 1) throw cardErr.data('PUT-TRUST-ANCHOR: empty data');
  const n = data[0]!;
  if (data.length < 1 + n) throw cardErr.data('PUT-TRUST-ANCHOR: label longer than the data');
  const label = decodeLabel(data.subarray(1, 1 + n));
  const rest = data.subarray(1 + n);
  if (op === TrustAnchorOp.clear) {
    if (rest.length !== 0) throw cardErr.data('PUT-TRUST-ANCHOR clear takes the label only');
    return { label };
  }
  if (rest.length === 0 || rest.length > Limits.maxTrustAnchorBytes) throw cardErr.data(`PUT-TRUST-ANCHOR: a certificate is 1–${Limits.maxTrustAnchorBytes} bytes`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(rest);
  } catch (e) {
    throw cardErr.data('PUT-TRUST-ANCHOR: the certificate does not parse', e);
  }
  // X509Certificate parses a prefix too: the DER must be exactly the certificate.
  if (cert.raw.length !== rest.length) throw cardErr.data('PUT-TRUST-ANCHOR: bytes after the certificate');
  if (!cert.ca) throw cardErr.data('PUT-TRUST-ANCHOR: the certificate is not a CA (basicConstraints cA)');
  return { label, certificate: rest.slice() };
}

// ------------------------------------------------------------------ PUT-PSK

/**
 * PUT-PSK data. Add/replace (P2 00): `50` identity (1..128 bytes), `51` key (16..64), `52` hash (00
 * SHA-256, 01 SHA-384; default 00), each once, `50` and `51` required. Delete (P2 01): `50` only.
 * The key is a fresh copy (the caller stores or wipes it). 6A80 otherwise.
 */
export function parsePskCommand(data: Uint8Array, op: number): { identity: Uint8Array; psk?: PskRecord } {
  const items = tlvs(data, 'PUT-PSK');
  let identity: Uint8Array | undefined;
  let key: Uint8Array | undefined;
  let hash: 'sha256' | 'sha384' | undefined;
  try {
    for (const { tag, value } of items) {
      switch (tag) {
        case PskTag.identity:
          if (identity) throw cardErr.data('PUT-PSK: identity given twice');
          if (value.length < 1 || value.length > Limits.maxPskIdentity) throw cardErr.data(`PUT-PSK: a PSK identity is 1–${Limits.maxPskIdentity} bytes`);
          identity = value.slice();
          break;
        case PskTag.key:
          if (op !== PskOp.put) throw cardErr.data('PUT-PSK delete takes the identity only');
          if (key) throw cardErr.data('PUT-PSK: key given twice');
          if (value.length < Limits.minPskKey || value.length > Limits.maxPskKey) throw cardErr.data(`PUT-PSK: a PSK is ${Limits.minPskKey}–${Limits.maxPskKey} bytes`);
          key = value.slice();
          break;
        case PskTag.hash:
          if (op !== PskOp.put) throw cardErr.data('PUT-PSK delete takes the identity only');
          if (hash) throw cardErr.data('PUT-PSK: hash given twice');
          if (value.length !== 1 || (value[0] !== PskHashCode.sha256 && value[0] !== PskHashCode.sha384)) throw cardErr.data('PUT-PSK: hash is one byte, 00 SHA-256 or 01 SHA-384');
          hash = value[0] === PskHashCode.sha384 ? 'sha384' : 'sha256';
          break;
        default:
          throw cardErr.data(`PUT-PSK: unknown tag 0x${tag.toString(16)}`);
      }
    }
    if (!identity) throw cardErr.data('PUT-PSK: identity (tag 50) missing');
    if (op === PskOp.remove) return { identity };
    if (!key) throw cardErr.data('PUT-PSK: key (tag 51) missing');
    return { identity, psk: { identity, key, hash: hash ?? 'sha256' } };
  } catch (e) {
    wipe(key);
    throw e;
  }
}

// ------------------------------------------------------------------ EXPORTER

export interface ExporterRequest {
  readonly label: string;
  /** undefined = no context (tag 61 absent). */
  readonly context: Uint8Array | undefined;
  readonly length: number;
}

/** EXPORTER data: `60` label (required), `61` context (optional), `62` length (2 bytes, 1..1024), each once. 6A80 otherwise. */
export function parseExporterRequest(data: Uint8Array): ExporterRequest {
  const items = tlvs(data, 'EXPORTER');
  let label: string | undefined;
  let context: Uint8Array | undefined;
  let length: number | undefined;
  for (const { tag, value } of items) {
    switch (tag) {
      case ExporterTag.label: {
        if (label !== undefined) throw cardErr.data('EXPORTER: label given twice');
        const l = utf8Text(value, 'exporter label');
        if (!validExporterLabel(l)) throw cardErr.data(`EXPORTER: a label is 1–${Limits.maxExporterLabel} bytes without control characters`);
        label = l;
        break;
      }
      case ExporterTag.context:
        if (context !== undefined) throw cardErr.data('EXPORTER: context given twice');
        if (value.length > Limits.maxExporterContext) throw cardErr.data(`EXPORTER: context longer than ${Limits.maxExporterContext} bytes`);
        context = value.slice();
        break;
      case ExporterTag.length:
        if (length !== undefined) throw cardErr.data('EXPORTER: length given twice');
        if (value.length !== 2) throw cardErr.data('EXPORTER: length is 2 bytes');
        length = readU16(value, 0);
        if (length < 1 || length > Limits.maxExporterLength) throw cardErr.data(`EXPORTER: length must be 1..${Limits.maxExporterLength}`);
        break;
      default:
        throw cardErr.data(`EXPORTER: unknown tag 0x${tag.toString(16)}`);
    }
  }
  if (label === undefined) throw cardErr.data('EXPORTER: label (tag 60) missing');
  if (length === undefined) throw cardErr.data('EXPORTER: length (tag 62) missing');
  return { label, context, length };
}
