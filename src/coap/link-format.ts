/**
 * CoRE Link Format (RFC 6690) for /.well-known/core: serialising links with attributes, a
 * tolerant parser (for clients and tests), and the query filter of RFC 6690 §4.1.
 * imports nothing of the project.
 */

export interface LinkAttributes {
  /** Resource type(s), e.g. 'plug.power'. */
  readonly rt?: string | readonly string[];
  /** Interface description(s), e.g. 'core.s'. */
  readonly if?: string | readonly string[];
  /** Content-Format(s). */
  readonly ct?: number | readonly number[];
  /** Observable (RFC 7641 §6). */
  readonly obs?: boolean;
  /** Maximum size estimate, bytes. */
  readonly sz?: number;
  readonly title?: string;
  /** Other attributes: string values are quoted, true means a bare flag. */
  readonly [key: string]: string | number | boolean | readonly (string | number)[] | undefined;
}

export interface Link {
  readonly href: string;
  readonly attrs: LinkAttributes;
}

const quote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

function attrText(key: string, v: LinkAttributes[string]): string | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return key;
  if (Array.isArray(v)) {
    if (key === 'ct') return `ct=${v.length === 1 ? String(v[0]) : quote(v.join(' '))}`;
    return `${key}=${quote(v.join(' '))}`;
  }
  if (typeof v === 'number') return `${key}=${v}`;
  return `${key}=${quote(String(v))}`;
}

export function formatLinks(links: readonly Link[]): string {
  return links
    .map((l) => {
      const parts = [`<${l.href}>`];
      for (const [k, v] of Object.entries(l.attrs)) {
        const t = attrText(k, v);
        if (t !== undefined) parts.push(t);
      }
      return parts.join(';');
    })
    .join(',');
}

/** Parses link-format text into href + attribute strings (bare flags become true). */
export function parseLinks(text: string): { href: string; attrs: Record<string, string | true> }[] {
  const out: { href: string; attrs: Record<string, string | true> }[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && (text[i] === ',' || /\s/.test(text[i]!))) i++;
    if (i >= n) break;
    if (text[i] !== '<') throw new SyntaxError(`link-format: expected '<' at ${i}`);
    const close = text.indexOf('>', i);
    if (close < 0) throw new SyntaxError('link-format: unterminated <');
    const href = text.slice(i + 1, close);
    i = close + 1;
    const attrs: Record<string, string | true> = {};
    while (i < n && text[i] === ';') {
      i++;
      let k = '';
      while (i < n && /[A-Za-z0-9!#$&+\-.^_`|~*]/.test(text[i]!)) k += text[i++];
      if (text[i] === '=') {
        i++;
        let v = '';
        if (text[i] === '"') {
          i++;
          while (i < n && text[i] !== '"') {
            if (text[i] === '\\' && i + 1 < n) i++;
            v += text[i++];
          }
          i++;
        } else while (i < n && text[i] !== ';' && text[i] !== ',') v += text[i++];
        attrs[k] = v;
      } else attrs[k] = true;
    }
    out.push({ href, attrs });
  }
  return out;
}

/**
 * RFC 6690 §4.1 filtering: `?name=value` keeps links whose attribute (or `href`) has that value
 * among its space-separated values; a trailing '*' matches a prefix.
 */
export function filterLinks(links: readonly Link[], query: readonly string[]): Link[] {
  if (query.length === 0) return [...links];
  const q = query[0]!;
  const eq = q.indexOf('=');
  if (eq < 0) return [...links];
  const key = q.slice(0, eq);
  const want = q.slice(eq + 1);
  const match = (v: string): boolean => (want.endsWith('*') ? v.startsWith(want.slice(0, -1)) : v === want);
  return links.filter((l) => {
    if (key === 'href') return match(l.href);
    const v = l.attrs[key];
    if (v === undefined || v === false) return false;
    if (v === true) return want === '' || want === '*';
    const values = Array.isArray(v) ? v.map(String) : String(v).split(' ');
    return values.some(match);
  });
}
