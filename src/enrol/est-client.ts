/**
 * enrol/est-client: zero-touch enrolment of a card over RFC 7030 EST (design §3.6 Mode B), the
 * device's whole side: ask the card (plain GetCardInfo) whether it has an operator or an active
 * identity — then nothing to do —, GET /.well-known/est/csrattrs for the operator's challenge, have
 * the card make a key and a CSR over it with its attestation evidence (est-card.ts), POST it to
 * /simpleenroll (application/pkcs10, base64 DER), and install the certs-only answer (leaf, then
 * the issuing CA) in the card and activate it. Every HTTP exchange has a timeout and a bounded
 * body; the operator's refusals (text/plain, ERR_OP_…) come back as ERR_EST_REFUSED with the code.
 * imports bytes/, gp/admin, enrol/est-card, node:https.
 */
import { request } from 'node:https';
import { parseBerTlvs, SetlsError, toHex } from '../bytes/index.js';
import { AdminClient, AdminRequest, parseCardInfo, SlotStatus, type Transmit } from '../gp/admin/index.js';
import { cardCsr, cardInstall } from './est-card.js';

export interface EstEnrolOptions {
  /** The operator's base URL, https://host:port (the EST resources are under /.well-known/est/). */
  readonly url: string;
  /** PEM of the CA of the operator's TLS certificate (default: the system's). */
  readonly ca?: string;
  /** Whole-response transmit to the card (61xx already followed). */
  readonly transmit: Transmit;
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

export type EstEnrolResult =
  | { readonly status: 'enrolled'; readonly uid: string; readonly slot: number; readonly certificate: Uint8Array }
  | { readonly status: 'has-operator' | 'already-enrolled'; readonly uid: string };

const BODY_LIMIT = 64 * 1024;
const OID_CHALLENGE_PASSWORD = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07);

function http(o: EstEnrolOptions, method: 'GET' | 'POST', path: string, body?: { type: string; text: string }): Promise<{ status: number; type: string; text: string }> {
  const url = new URL(path, o.url);
  return new Promise((resolve, reject) => {
    const r = request(
      url,
      {
        method,
        timeout: o.timeoutMs ?? 30_000,
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
        headers: body ? { 'content-type': body.type, 'content-length': String(Buffer.byteLength(body.text)) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > BODY_LIMIT) res.destroy(new SetlsError('ERR_EST_HTTP', `${method} ${url.pathname}: answer over ${BODY_LIMIT} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('latin1') }));
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new SetlsError('ERR_EST_HTTP', `${method} ${url.pathname}: no answer within ${o.timeoutMs ?? 30_000} ms`)));
    r.on('error', reject);
    r.end(body?.text);
  });
}

function base64Der(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new SetlsError('ERR_EST_HTTP', 'the answer is not base64');
  return new Uint8Array(Buffer.from(clean, 'base64'));
}

/** The children of a DER element's content. */
function children(value: Uint8Array): { tag: number; value: Uint8Array }[] {
  return parseBerTlvs(value, 4096);
}

/** The challengePassword text of a CsrAttrs answer (SEQUENCE OF OID | Attribute). */
export function challengeOfCsrAttrs(der: Uint8Array): string {
  const [top] = parseBerTlvs(der, 1);
  if (!top || top.tag !== 0x30) throw new SetlsError('ERR_EST_HTTP', 'csrattrs: not a SEQUENCE');
  for (const item of children(top.value)) {
    if (item.tag !== 0x30) continue;
    const [type, values] = children(item.value);
    if (!type || type.tag !== 0x06 || toHex(type.value) !== toHex(OID_CHALLENGE_PASSWORD) || !values) continue;
    const [v] = children(values.value);
    if (v && (v.tag === 0x0c || v.tag === 0x13)) return new TextDecoder().decode(v.value);
  }
  throw new SetlsError('ERR_EST_HTTP', 'csrattrs: no challengePassword');
}

/** The certificates of a certs-only CMS (ContentInfo { signedData, [0] { SignedData { …, [0] certificates } } }). */
export function certsOfCertsOnly(der: Uint8Array): Uint8Array[] {
  const [ci] = parseBerTlvs(der, 1);
  if (!ci || ci.tag !== 0x30) throw new SetlsError('ERR_EST_HTTP', 'certs-only: not a ContentInfo');
  const [, explicit] = children(ci.value);
  const [sd] = explicit ? children(explicit.value) : [];
  const certs = sd ? children(sd.value).find((c) => c.tag === 0xa0) : undefined;
  if (!certs) throw new SetlsError('ERR_EST_HTTP', 'certs-only: no certificates');
  // each certificate re-encoded exactly: walk the raw bytes of the [0] content
  const out: Uint8Array[] = [];
  let o = 0;
  const b = certs.value;
  while (o < b.length) {
    const n = b[o + 1]!;
    const k = n & 0x80 ? n & 0x7f : 0;
    let len = k ? 0 : n;
    for (let i = 0; i < k; i++) len = len * 256 + b[o + 2 + i]!;
    const end = o + 2 + k + len;
    if (b[o] !== 0x30 || end > b.length) throw new SetlsError('ERR_EST_HTTP', 'certs-only: a certificate does not parse');
    out.push(b.slice(o, end));
    o = end;
  }
  return out;
}

/** Enrols the card when it has neither an operator nor an active identity (see the header). */
export async function estEnrol(o: EstEnrolOptions): Promise<EstEnrolResult> {
  const log = o.log ?? (() => undefined);
  const c = new AdminClient(o.transmit);
  await c.select();
  let info;
  try {
    info = parseCardInfo(await c.callPlain(AdminRequest.getCardInfo()));
  } catch (e) {
    if ((e as { sw?: number }).sw === 0x6982) {
      const uid = toHex(await c.getData(0xdf50));
      log(`est: card ${uid} has an operator (plain access closed): nothing to do`);
      return { status: 'has-operator', uid };
    }
    throw e;
  }
  const uid = toHex(info.uid);
  if (info.slots.some((s) => s.status === SlotStatus.active)) {
    log(`est: card ${uid} already has an active identity: nothing to do`);
    return { status: 'already-enrolled', uid };
  }
  const attrs = await http(o, 'GET', '/.well-known/est/csrattrs');
  if (attrs.status !== 200) throw new SetlsError('ERR_EST_REFUSED', `GET /csrattrs answered ${attrs.status}: ${attrs.text.trim().slice(0, 200)}`);
  const challenge = challengeOfCsrAttrs(base64Der(attrs.text));
  const { slot, csrDer } = await cardCsr(o.transmit, challenge);
  log(`est: card ${uid} made a key in slot ${slot} and a CSR of ${csrDer.length} bytes with its attestation`);
  const r = await http(o, 'POST', '/.well-known/est/simpleenroll', { type: 'application/pkcs10', text: Buffer.from(csrDer).toString('base64') });
  if (r.status !== 200) throw new SetlsError('ERR_EST_REFUSED', `POST /simpleenroll answered ${r.status}: ${r.text.trim().slice(0, 200)}`);
  const chain = certsOfCertsOnly(base64Der(r.text));
  await cardInstall(o.transmit, slot, chain);
  log(`est: card ${uid} enrolled: slot ${slot} active with a chain of ${chain.length} certificate(s)`);
  return { status: 'enrolled', uid, slot, certificate: chain[0]! };
}
