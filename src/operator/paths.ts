/**
 * operator/paths: the files of an operator state folder (`setls operator init --dir D`, default
 * `.setls/operator`) and its small JSON configuration. imports nothing but node:fs/path.
 *
 *   D/operator.db (+ -wal, -shm)  the SQLite store (no private key, no card key), unless the
 *                                 configuration names a PostgreSQL store (`store`)
 *   D/ca.crt, D/ca.key            the issuing CA relying parties trust / its key (0600)
 *   D/tls.crt, D/tls.key          the operator's own HTTPS certificate / key (0600)
 *   D/tls-ca.crt, D/tls-ca.key    the separate CA that issued tls.crt (clients of the API trust it)
 *   D/keys/admin-master-v1.key    the admin master key (0600): per-card SCP03 keys derive from it
 *   D/keys/transport-<id>.key     a manufacturer's transport (factory) master, when given
 *   D/manufacturers/*.pem         trusted manufacturer CAs (also in the store)
 *   D/admin.token                 an admin API token (0600)
 *   D/operator.json               configuration (public URL, certificate defaults)
 *   D/serve.json                  written by a running `serve`: its URL and PID
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const DEFAULT_OPERATOR_DIR = '.setls/operator';
export const DEFAULT_OPERATOR_PORT = 9443;

export interface OperatorPaths {
  readonly dir: string;
  readonly db: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly tlsCaCert: string;
  readonly tlsCaKey: string;
  readonly keysDir: string;
  readonly manufacturersDir: string;
  readonly adminToken: string;
  readonly config: string;
  readonly serveInfo: string;
}

export function operatorPaths(dir: string = DEFAULT_OPERATOR_DIR): OperatorPaths {
  const d = resolve(dir);
  return {
    dir: d,
    db: join(d, 'operator.db'),
    caCert: join(d, 'ca.crt'),
    caKey: join(d, 'ca.key'),
    tlsCert: join(d, 'tls.crt'),
    tlsKey: join(d, 'tls.key'),
    tlsCaCert: join(d, 'tls-ca.crt'),
    tlsCaKey: join(d, 'tls-ca.key'),
    keysDir: join(d, 'keys'),
    manufacturersDir: join(d, 'manufacturers'),
    adminToken: join(d, 'admin.token'),
    config: join(d, 'operator.json'),
    serveInfo: join(d, 'serve.json'),
  };
}

export interface OperatorConfig {
  /** Base URL relying parties and agents reach this operator at (CDP URLs are built from it);
   *  absent: the URL `serve` listens on. */
  readonly publicUrl?: string;
  /** Explicit CRL URL for issued certificates (default `<publicUrl>/v1/ca/crl`). */
  readonly crlUrl?: string;
  /** Validity of issued card certificates, days. */
  readonly certificateDays: number;
  /** SAN of card certificates when the card's profile names none. */
  readonly defaultDnsNames: readonly string[];
  readonly defaultIpAddresses: readonly string[];
  /** CRL validity (nextUpdate − thisUpdate), hours (≤ 24). */
  readonly crlHours: number;
  /** The store: a `postgres://…` URL (kept without its password: give it through PGPASSWORD or
   *  ~/.pgpass, or the whole URL through --store / SETLS_OPERATOR_STORE); absent: D/operator.db. */
  readonly store?: string;
}

export const DEFAULT_CONFIG: OperatorConfig = {
  certificateDays: 30,
  defaultDnsNames: ['localhost'],
  defaultIpAddresses: ['127.0.0.1', '::1'],
  crlHours: 24,
};

export function readConfig(paths: OperatorPaths): OperatorConfig {
  if (!existsSync(paths.config)) return DEFAULT_CONFIG;
  const raw = JSON.parse(readFileSync(paths.config, 'utf8')) as Partial<OperatorConfig>;
  return { ...DEFAULT_CONFIG, ...raw };
}

/** Where the store is: the explicit choice, else SETLS_OPERATOR_STORE, else the configured one,
 *  else the SQLite file of the folder. */
export function storeTargetOf(paths: OperatorPaths, config: OperatorConfig, explicit?: string): string {
  return explicit || process.env['SETLS_OPERATOR_STORE'] || config.store || paths.db;
}

export function crlUrlOf(config: OperatorConfig, listeningUrl?: string): string {
  const base = config.publicUrl ?? listeningUrl ?? `https://localhost:${DEFAULT_OPERATOR_PORT}`;
  return config.crlUrl ?? `${base.replace(/\/+$/, '')}/v1/ca/crl`;
}
