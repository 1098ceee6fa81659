/**
 * cli/operator-format: human output of the operator CLI — aligned plain-text tables and short
 * card / job / certificate summaries (`--json` prints the API's JSON instead). imports nothing.
 */
export function table(headers: readonly string[], rows: readonly (readonly (string | number | null | undefined)[])[]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

type J = Record<string, unknown>;

export function short(t: unknown): string {
  return typeof t === 'string' ? t.replace(/\.\d{3}Z$/, 'Z') : '-';
}

export function jobLine(j: J): string {
  const reason = j['reason'] ? ` (${String(j['reason'])})` : '';
  const err = j['errorCode'] ? ` ${String(j['errorCode'])}: ${String(j['errorMessage'] ?? '')}` : '';
  return `job ${String(j['id'])} ${String(j['kind'])} on ${String(j['card'])}: ${String(j['status'])}${reason}, attempt ${String(j['attempt'])}/${String(j['maxAttempts'])}${err}`;
}

export function cardDetails(c: J): string {
  const out: string[] = [];
  out.push(`card ${String(c['uid'])}  state ${String(c['state'])}  kvn ${String(c['kvn'])}`);
  out.push(`  attestation certificate SHA-256 ${String(c['attestationCertificateSha256'])}`);
  const labels = c['labels'] as J;
  if (labels && Object.keys(labels).length) out.push(`  labels ${Object.entries(labels).map(([k, v]) => `${k}=${String(v)}`).join(', ')}`);
  const ids = (c['identities'] as J[]) ?? [];
  out.push(`  identities: ${ids.length === 0 ? 'none' : ''}`);
  for (const i of ids) out.push(`    slot ${String(i['slot'])} ${String(i['alg'])} ${String(i['state'])} SPKI SHA-256 ${String(i['spkiSha256'])}`);
  const certs = (c['certificates'] as J[]) ?? [];
  out.push(`  certificates: ${certs.length === 0 ? 'none' : ''}`);
  if (certs.length) {
    out.push(
      table(
        ['    SERIAL', 'STATUS', 'NOT AFTER', 'SAN'],
        certs.map((x) => [`    ${String(x['serial'])}`, String(x['status']), short(x['notAfter']), sanText(x['san'])]),
      ),
    );
  }
  const jobs = (c['jobs'] as J[]) ?? [];
  out.push(`  jobs: ${jobs.length === 0 ? 'none' : ''}`);
  if (jobs.length) {
    out.push(
      table(
        ['    JOB', 'KIND', 'STATUS', 'ATTEMPT', 'CREATED'],
        jobs.map((j) => [`    ${String(j['id'])}`, String(j['kind']), `${String(j['status'])}${j['reason'] ? ` (${String(j['reason'])})` : ''}`, `${String(j['attempt'])}/${String(j['maxAttempts'])}`, short(j['createdAt'])]),
      ),
    );
  }
  return out.join('\n');
}

export function sanText(san: unknown): string {
  const s = (san ?? {}) as { dnsNames?: string[]; ipAddresses?: string[] };
  return [...(s.dnsNames ?? []).map((d) => `DNS:${d}`), ...(s.ipAddresses ?? []).map((i) => `IP:${i}`)].join(',');
}
