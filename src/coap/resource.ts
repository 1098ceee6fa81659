/**
 * What a CoAP resource declares to the server (CoapServer.resource(path, desc)) so that the server
 * applies RFC 7252's request semantics before the handler runs, and the checks themselves:
 *   - methods       others → 4.05 Method Not Allowed
 *   - produces      the Content-Formats of its representations; an Accept outside them → 4.06 (§5.10.4)
 *   - consumes      per method, the Content-Formats a request body may come in; others → 4.15 (§5.10.3)
 *   - maxBodySize   a larger request body (whole or being assembled from Block1) → 4.13 with Size1 (§5.9.2.9)
 *   - etag(req)     the entity-tag of the current representation, for If-Match / If-None-Match
 *                   (§5.10.8): a failed precondition → 4.12 Precondition Failed
 * A handler serving paths it did not declare can call checkPreconditions / checkAccept itself.
 * imports nothing of the project but coap/.
 */
import type { CoapMethod } from './codes.js';
import type { LinkAttributes } from './link-format.js';
import type { CoapIncomingRequest } from './request.js';

export interface CoapResource {
  /** Methods it answers; any other gets 4.05 before the handler runs. Default: all. */
  readonly methods?: readonly CoapMethod[];
  /** Content-Formats of its representations (the first is the default). An Accept outside them gets 4.06. */
  readonly produces?: readonly number[];
  /** Per method, the Content-Formats a request body may come in. A Content-Format outside them gets 4.15. */
  readonly consumes?: Partial<Readonly<Record<CoapMethod, readonly number[]>>>;
  /** Largest request body in bytes; above it 4.13 with Size1 = this (also announced Size1 or assembled Block1). */
  readonly maxBodySize?: number;
  /**
   * The entity-tag (1..8 bytes) of the current representation the request targets, asked right
   * before the handler runs: If-Match compares against it, If-None-Match fails when a representation
   * exists. `null`: no current representation (If-Match fails, If-None-Match passes). Without `etag`,
   * the resource is taken as having a representation without an entity-tag.
   */
  etag?(req: CoapIncomingRequest): Uint8Array | null;
  /** Also list it in /.well-known/core with these attributes (ct defaults to `produces`). */
  readonly link?: LinkAttributes;
}

/** A refusal: the response code and its diagnostic payload. */
export interface Refusal {
  readonly code: string;
  readonly diagnostic: string;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The request's values of a repeatable opaque option (If-Match, ETag). */
export function opaqueValues(req: CoapIncomingRequest, name: 'If-Match' | 'ETag'): Uint8Array[] {
  const v = req.headers[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x): x is Uint8Array => x instanceof Uint8Array);
}

/**
 * RFC 7252 §5.10.8: If-Match (each value an entity-tag, or empty = "any current representation")
 * and If-None-Match ("no current representation"). `etag`: the current representation's
 * entity-tag, undefined when it has none, null when there is no current representation.
 */
export function checkPreconditions(req: CoapIncomingRequest, etag: Uint8Array | null | undefined): Refusal | undefined {
  const exists = etag !== null;
  const ifMatch = opaqueValues(req, 'If-Match');
  if (ifMatch.length > 0) {
    const ok = exists && ifMatch.some((v) => v.length === 0 || (etag !== undefined && sameBytes(v, etag)));
    if (!ok) {
      const now = !exists ? 'there is no current representation' : etag === undefined ? 'the representation has no ETag' : `the current ETag is ${hex(etag)}`;
      return { code: '4.12', diagnostic: `If-Match ${ifMatch.map((v) => (v.length ? hex(v) : '(any)')).join(',')} failed: ${now}` };
    }
  }
  if (req.headers['If-None-Match'] !== undefined && exists) {
    return { code: '4.12', diagnostic: 'If-None-Match failed: the resource has a current representation' };
  }
  return undefined;
}

/** RFC 7252 §5.10.4: an Accept the resource cannot produce → 4.06. */
export function checkAccept(req: CoapIncomingRequest, produces: readonly number[] | undefined): Refusal | undefined {
  const accept = req.headers.Accept;
  if (accept === undefined || !produces || produces.includes(accept)) return undefined;
  return { code: '4.06', diagnostic: `Accept ${accept} not available: this resource produces Content-Format ${produces.join(', ')}` };
}

/** RFC 7252 §5.10.3 / §5.9.2.10: a request body in a Content-Format the method cannot take → 4.15. */
export function checkContentFormat(req: CoapIncomingRequest, consumes: CoapResource['consumes']): Refusal | undefined {
  const cf = req.headers['Content-Format'];
  const allowed = consumes?.[req.method];
  if (cf === undefined || !allowed || allowed.includes(cf)) return undefined;
  return { code: '4.15', diagnostic: `Content-Format ${cf} not supported for ${req.method}: send ${allowed.join(' or ')}` };
}

/** Whether one of the request's ETag options (a GET validating its cached copies, §5.10.6.2) names `etag`. */
export function etagMatches(req: CoapIncomingRequest, etag: Uint8Array): boolean {
  return opaqueValues(req, 'ETag').some((v) => sameBytes(v, etag));
}
