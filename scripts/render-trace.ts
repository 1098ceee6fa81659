/**
 * Renders test/fixtures/card-trace/trace.json (a real captured card session) as the annotated
 * trace section of docs/apdu-protocol.md. `--check` exits 1 when the doc is out of date;
 * `--write` rewrites the section in place.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const BEGIN = '<!-- trace:begin -->';
const END = '<!-- trace:end -->';

interface Exchange {
  readonly step: string;
  readonly c: string;
  readonly r: string;
}

function spaced(hex: string): string {
  return hex.toUpperCase().replace(/(..)(?!$)/g, '$1 ');
}

function wrap(prefix: string, hex: string): string {
  const bytes = spaced(hex).split(' ');
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 24) lines.push((i === 0 ? prefix : '   ') + bytes.slice(i, i + 24).join(' '));
  return lines.join('\n');
}

function explain(e: Exchange): string {
  const c = e.c;
  const ins = c.slice(2, 4);
  const p1 = parseInt(c.slice(4, 6), 16);
  const p2 = parseInt(c.slice(6, 8), 16);
  const sw = e.r.slice(-4).toUpperCase();
  const notes: string[] = [];
  if (ins === 'a4') notes.push('SELECT by AID; the answer is the applet version TLV "setls/1"');
  else if (ins === '20') notes.push('VERIFY the user PIN "1234", padded with FF to 8 bytes (a test-only card)');
  else if (ins === '19') {
    const names: Record<string, string> = { '01': 'IDENTITY-NOT-SET', '02': 'AUTHENTICATING (no session: ready for a handshake)', '03': 'AUTHENTICATED', '04': 'NOT-AUTHENTICATED', '05': 'CLOSED' };
    const st = e.r.slice(0, 2).toLowerCase();
    notes.push(p1 === 0x10 ? 'a case-1 APDU; on T=0 it travels as the drafts\' TPDU A0 19 10 00 00' : `GET-STATE: ${st.toUpperCase()} = ${names[st] ?? 'unknown'}`);
  }
  else if (ins === 'c0') notes.push(`GET RESPONSE for the bytes announced by the previous 61xx`);
  else if (ins === '80') {
    const more = p1 & 1 ? ' segment with P1 More set (the card answers 9000 and waits for the rest)' : '';
    if (p2 & 0x80) notes.push(`PROCESS-EAP-ENCRYPT, content type ${(p2 & 0x7f).toString(16)}${more}`);
    else {
      const flags = [p1 & 2 ? 'START: the card wipes its TLS session first' : '', p1 & 4 ? 'INFO: session info after EAP-Success' : '', p1 & 8 ? 'END: an answer that ends the session wipes it' : '', p1 & 0x10 ? 'FOLD: the EAP-Success comes with the card\'s last records' : ''].filter(Boolean).join(', ');
      notes.push(`PROCESS-EAP${e.step.startsWith('DECRYPT') ? ' (DECRYPT: after EAP-Success)' : ''}${flags ? ` (P1 ${flags})` : ''}${more}`);
    }
  }
  if (sw.startsWith('61')) notes.push(`${sw}: ${parseInt(sw.slice(2), 16) || 256} more response bytes`);
  const r = e.r.toLowerCase();
  const reqLen = r.startsWith('01') && r.length >= 12 ? parseInt(r.slice(4, 8), 16) : 0;
  if (reqLen && r.length - 4 > reqLen * 2 && r.slice(reqLen * 2, reqLen * 2 + 2) === '03' && r.slice(reqLen * 2 + 4, reqLen * 2 + 8) === '0004') {
    notes.push('EAP-Request with the last records (the ticket), then EAP-Success (03 id+1 00 04) and the session info TLV (§5), FOLD: the handshake is complete');
  }
  if (e.r.toLowerCase().startsWith('03') && e.r.length === 12) notes.push('EAP-Success (03 id 00 04): the handshake is complete');
  else if (e.r.toLowerCase().startsWith('03') && e.r.slice(4, 8) === '0004') notes.push('EAP-Success (03 id 00 04) followed by the session info TLV (§5): the handshake is complete');
  return notes.join('; ');
}

export function renderTrace(exchanges: readonly Exchange[]): string {
  const out: string[] = [BEGIN, '', '```'];
  exchanges.forEach((e, i) => {
    out.push(`# ${i + 1}. ${e.step}: ${explain(e)}`);
    out.push(wrap('>> ', e.c));
    out.push(wrap('<< ', e.r));
    out.push('');
  });
  out.pop();
  out.push('```', '', END);
  return out.join('\n');
}

function main(): void {
  const root = resolve(fileURLToPath(import.meta.url), '../..');
  const trace = JSON.parse(readFileSync(resolve(root, 'test/fixtures/card-trace/trace.json'), 'utf8')) as { exchanges: Exchange[] };
  const docPath = resolve(root, 'docs/apdu-protocol.md');
  const doc = readFileSync(docPath, 'utf8');
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < 0) throw new Error('docs/apdu-protocol.md lacks the trace markers');
  const next = doc.slice(0, a) + renderTrace(trace.exchanges) + doc.slice(b + END.length);
  if (process.argv.includes('--write')) writeFileSync(docPath, next);
  else if (next !== doc) {
    console.error('docs/apdu-protocol.md: the captured trace section is out of date; run node --import tsx scripts/render-trace.ts --write');
    process.exit(1);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
