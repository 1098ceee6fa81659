/**
 * Dependency-boundary check: every import between src/ folders must be allowed by RULES.
 * The card boundary is the point: host/, transport/ and servers/ never import card/ or the TLS
 * handshake code (only tls/record — record framing and AEAD record protection — and tls/crypto.js,
 * the primitives; neither holds a secret of the card). The card protocol (protocol/: INS codes, tags,
 * shared codecs) is the one module card and host share besides apdu/, eap/ and tls/record; it imports
 * bytes/ only.
 *
 * Usage: node --import tsx scripts/check-deps.ts [SRC_DIR]   (exit 1 and a list on violations)
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** folder → folders (or folder/subfolder prefixes) it may import. */
export const RULES: Record<string, readonly string[]> = {
  bytes: [],
  registry: [],
  apdu: ['bytes'],
  eap: ['bytes'],
  tls: ['bytes'],
  // The card protocol (INS codes, flags, tags, status words, shared codecs): pure, so card and host
  // alike import it, and it imports nothing but bytes.
  protocol: ['bytes'],
  // gp: the security domain applet (card/applets/isd) runs SCP03's card side and the admin protocol.
  card: ['bytes', 'apdu', 'eap', 'tls', 'protocol', 'gp'],
  transport: ['bytes', 'apdu', 'protocol'],
  // tls/crypto.js: primitives only (AEAD, HKDF-Expand-Label), for the TLS-Tandem host record layer.
  host: ['bytes', 'apdu', 'eap', 'transport', 'tls/record', 'tls/crypto.js', 'registry', 'protocol'],
  pki: ['bytes'],
  // GlobalPlatform SCP03 for card and operator alike: pure, so both sides may import it; the admin
  // protocol's data (AID, tags, lifecycle codes) is written once in protocol/isd.ts.
  gp: ['bytes', 'protocol'],
  // Off-card factory personalisation: builds APDUs and parses answers, never imports card code.
  factory: ['bytes', 'gp'],
  coap: ['bytes'],
  servers: ['bytes', 'host', 'registry', 'coap', 'protocol'],
  // The operator service: never card/, host/ or tls/ (it reaches cards only through SCP03 scripts).
  operator: ['bytes', 'gp', 'pki', 'registry', 'protocol'],
  // The device-agent relay protocol (setls-remote-admin/1), shared by operator and agent: pure.
  relay: ['bytes', 'protocol'],
  // The device agent: a host-side relay that reaches the card through CardClient only (never card/,
  // gp/ or operator/ code: it cannot read what it relays, and needs nothing to do so).
  agent: ['bytes', 'apdu', 'transport', 'host/card-client.js', 'relay'],
  // The operator's end of the relay (a subfolder rule: more specific than a rule for its top folder).
  'operator/relay': ['bytes', 'apdu', 'relay'],
  // The package's public entry points (createServer, openCard, setls/coap, setls/pcsc): wiring like
  // cli/, whose card set-up it reuses, but never the card or TLS code directly.
  api: ['bytes', 'host', 'transport', 'servers', 'coap', 'registry', 'protocol', 'cli'],
  // Zero-touch EST enrolment, the device's side: plain STORE DATA to the card's security domain
  // (gp/admin's AdminClient) and an HTTPS EST client; never card/ or operator/ code.
  enrol: ['bytes', 'gp', 'protocol'],
  cli: ['*'],
};

/** The rule of a module: the longest RULES key that is its top folder or a folder prefix of it. */
function ruleKey(from: string): string | undefined {
  let best: string | undefined;
  for (const k of Object.keys(RULES)) {
    if ((from === k || from.startsWith(k + '/')) && (!best || k.length > best.length)) best = k;
  }
  return best;
}

export interface Violation {
  readonly file: string;
  readonly specifier: string;
  readonly from: string;
  readonly to: string;
}

const IMPORT_RE = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

function listTs(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) listTs(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

/** The src-relative module path of `file` (posix separators). */
function srcPath(srcDir: string, file: string): string {
  return relative(srcDir, file).split(sep).join('/');
}

function allowed(from: string, to: string): boolean {
  const key = ruleKey(from);
  if (!key) return false;
  const rules = RULES[key]!;
  if (to === key || to.startsWith(key + '/')) return true; // within its own folder
  return rules.some((r) => r === '*' || to === r || to.startsWith(r + '/'));
}

export function checkDeps(srcDir: string): { violations: Violation[]; files: number } {
  const root = resolve(srcDir);
  const files = listTs(root);
  const violations: Violation[] = [];
  for (const file of files) {
    const from = srcPath(root, file);
    const fromTop = from.split('/')[0]!;
    if (!ruleKey(from)) {
      violations.push({ file: from, specifier: '(folder)', from: fromTop, to: '(no rule for this folder)' });
      continue;
    }
    const src = stripComments(readFileSync(file, 'utf8'));
    for (const m of src.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith('.')) continue; // packages and node: built-ins are not boundaries
      const target = srcPath(root, resolve(dirname(file), spec));
      if (target.startsWith('..')) {
        violations.push({ file: from, specifier: spec, from: fromTop, to: target });
        continue;
      }
      if (!allowed(from, target)) violations.push({ file: from, specifier: spec, from: fromTop, to: target });
    }
  }
  return { violations, files: files.length };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? 'src';
  const { violations, files } = checkDeps(dir);
  if (violations.length) {
    console.error(`dependency check: ${violations.length} forbidden import(s) in ${dir}:`);
    for (const v of violations) console.error(`  ${v.file}: '${v.specifier}' (${v.from}/ may not import ${v.to})`);
    process.exit(1);
  }
  console.log(`dependency check: ${files} files in ${dir}, no forbidden imports`);
}
