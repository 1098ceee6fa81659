/**
 * Host names of an identity and SNI matching (docs/apdu-protocol.md §2 "Identity selection"): the
 * names are the SAN dNSName entries of the identity's leaf certificate, compared case-insensitively;
 * `*.example.com` matches exactly one extra label (`a.example.com`, not `example.com` nor
 * `a.b.example.com`). No secrets. imports card/ siblings and node built-ins.
 */
import { X509Certificate } from 'node:crypto';
import { Limits } from './constants.js';

const LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
const NAME_RE = new RegExp(`^(\\*\\.)?(${LABEL}\\.)*${LABEL}$`);

/** A lower-cased, validated DNS name or wildcard pattern; undefined when `s` is not one. */
export function normaliseHostName(s: string): string | undefined {
  const n = s.toLowerCase().replace(/\.$/, '');
  if (n.length < 1 || n.length > Limits.maxDnsName || !NAME_RE.test(n)) return undefined;
  // a wildcard needs at least two labels after it (no `*.com`)
  if (n.startsWith('*.') && n.slice(2).split('.').length < 2) return undefined;
  return n;
}

/**
 * The SAN DNS names of a leaf certificate (DER), normalised, duplicates removed, at most
 * Limits.maxHostNames. Entries that are not DNS names (IP, URI, e-mail) or not valid names are skipped.
 * Throws when the certificate does not parse.
 */
export function leafHostNames(leafDer: Uint8Array): string[] {
  const san = new X509Certificate(leafDer).subjectAltName;
  if (!san) return [];
  const out: string[] = [];
  // Node's form: `DNS:a.example, IP Address:127.0.0.1`; a DNS name never holds ", " or quotes.
  for (const entry of san.split(', ')) {
    if (!entry.startsWith('DNS:')) continue;
    const n = normaliseHostName(entry.slice(4));
    if (n !== undefined && !out.includes(n) && out.length < Limits.maxHostNames) out.push(n);
  }
  return out;
}

export type HostMatch = 'exact' | 'wildcard' | undefined;

/** How `pattern` (normalised) matches `host` (any case, optional trailing dot). */
export function matchHostName(pattern: string, host: string): HostMatch {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h.length === 0) return undefined;
  if (!pattern.startsWith('*.')) return pattern === h ? 'exact' : undefined;
  const dot = h.indexOf('.');
  if (dot < 1) return undefined;
  return h.slice(dot + 1) === pattern.slice(2) ? 'wildcard' : undefined;
}

/**
 * The best match for `host` among candidates: the first with an exact name, else the first with a
 * wildcard name, else undefined.
 */
export function bestHostMatch<T extends { readonly hostNames: readonly string[] }>(candidates: readonly T[], host: string): T | undefined {
  let wildcard: T | undefined;
  for (const c of candidates) {
    for (const n of c.hostNames) {
      const m = matchHostName(n, host);
      if (m === 'exact') return c;
      if (m === 'wildcard' && wildcard === undefined) wildcard = c;
    }
  }
  return wildcard;
}
