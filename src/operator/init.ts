/**
 * operator/init: `setls operator init` — creates an operator state folder (paths.ts): the store,
 * the issuing CA, a separate TLS CA and the operator's HTTPS certificate, the admin master key, an
 * admin API token, the first CRL, the configuration; trusts the manufacturer CAs given and keeps the
 * manufacturer master keys given (the cards' factory SCP03 keys derive from them). Refuses an
 * existing folder state. imports bytes/, gp/, store/, pki/, keys/, auth/, paths, errors.
 *
 * Why a separate TLS CA: relying parties trust ca.crt to authenticate *cards*; if the operator's own
 * HTTPS certificate came from that CA, anything trusting cards would also accept a card key as the
 * operator (and vice versa). API clients trust tls-ca.crt instead.
 */
import { randomUUID, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { createApiToken } from './auth/tokens.js';
import { OpError, OpErrorCode } from './errors.js';
import { aesKcv, transportKeyId } from '../gp/index.js';
import { toHex, wipe } from '../bytes/index.js';
import { adminMasterPath, createMasterKeyFile, readMasterKeyFile, transportMasterPath } from './keys/master-keys.js';
import { writeSecretFile } from './keys/secret-files.js';
import { DEFAULT_CONFIG, operatorPaths, type OperatorConfig, type OperatorPaths } from './paths.js';
import { OperatorCa } from './pki/issuing-ca.js';
import { DAY_MS, EC_P256, randomSerial, toPem } from './pki/x509.js';
import { isPgUrl, openStore, redactStoreUrl } from './store/index.js';
import { Operator } from './operator.js';

export interface InitOptions {
  readonly dir?: string;
  readonly publicUrl?: string;
  /** Extra DNS names / IPs for the operator's HTTPS certificate (localhost, 127.0.0.1, ::1 always). */
  readonly hostnames?: readonly string[];
  readonly manufacturerCaPems?: readonly string[];
  /**
   * Manufacturer master key files (hex AES keys, 0600): each is kept as `keys/transport-<id>.key`
   * (id = gp transportKeyId: `mfr-<KCV>`, what the manufacturer's manifests name), so the operator
   * derives each card's factory key set (KVN 30) from it and the card's UID.
   */
  readonly manufacturerKeyFiles?: readonly string[];
  readonly name?: string;
  readonly now?: number;
  /** A `postgres://…` URL: the store lives there (its URL without password goes to operator.json);
   *  default: SETLS_OPERATOR_STORE when it names one, else the SQLite file D/operator.db. */
  readonly store?: string;
}

export interface InitResult {
  readonly paths: OperatorPaths;
  readonly adminToken: string;
  readonly caFingerprint: string;
  readonly masterKcv: string;
  readonly trustedManufacturers: number;
  /** The transport key ids of the manufacturer master keys given. */
  readonly transportKeyIds: readonly string[];
  /** Where the store is (a PostgreSQL URL without its password, or the SQLite file). */
  readonly store: string;
}

export async function initOperator(o: InitOptions = {}): Promise<InitResult> {
  const paths = operatorPaths(o.dir);
  if (existsSync(paths.db) || existsSync(paths.caKey)) {
    throw new OpError(OpErrorCode.stateExists, `${paths.dir} already holds an operator (operator.db / ca.key): refusing to overwrite it`);
  }
  const wanted = o.store ?? process.env['SETLS_OPERATOR_STORE'];
  const target = wanted && isPgUrl(wanted) ? wanted : paths.db;
  if (isPgUrl(target)) {
    const existing = await openStore(target);
    try {
      if (await existing.caByRole('issuing')) {
        throw new OpError(OpErrorCode.stateExists, `the database ${redactStoreUrl(target)} already holds an operator: refusing to overwrite it`);
      }
    } finally {
      await existing.close();
    }
  }
  const now = o.now ?? Date.now();
  const name = o.name ?? 'setls operator';
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  chmodSync(paths.dir, 0o700);
  mkdirSync(paths.keysDir, { mode: 0o700 });
  mkdirSync(paths.manufacturersDir, { recursive: true, mode: 0o755 });

  // Issuing CA (cards) and TLS CA (the operator's own endpoint): keys in files, 0600.
  const issuing = await OperatorCa.generate(`CN=${name} issuing CA`, 3650, now);
  writeSecretFile(paths.caKey, issuing.keyPem);
  writeFileSync(paths.caCert, issuing.ca.certPem);
  const tlsCa = await OperatorCa.generate(`CN=${name} TLS CA`, 3650, now);
  writeSecretFile(paths.tlsCaKey, tlsCa.keyPem);
  writeFileSync(paths.tlsCaCert, tlsCa.ca.certPem);
  const tlsKeys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', tlsKeys.publicKey));
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', tlsKeys.privateKey));
  writeSecretFile(paths.tlsKey, toPem(pkcs8, 'PRIVATE KEY'));
  pkcs8.fill(0);
  const extra = (o.hostnames ?? []).filter((h) => h !== 'localhost');
  const tlsCert = await tlsCa.ca.issue({
    spkiDer: spki,
    serial: randomSerial(),
    subject: `CN=${name}`,
    dnsNames: ['localhost', ...extra.filter((h) => !/^[\d.:]+$/.test(h))],
    ipAddresses: ['127.0.0.1', '::1', ...extra.filter((h) => /^[\d.:]+$/.test(h))],
    notBefore: new Date(now - 3600 * 1000),
    notAfter: new Date(now + 825 * DAY_MS),
    serverAuth: true,
    clientAuth: false,
  });
  writeFileSync(paths.tlsCert, toPem(tlsCert, 'CERTIFICATE'));

  // Admin master key (SCP03 keys per card are derived from it, never stored).
  const masterKcv = createMasterKeyFile(adminMasterPath(paths.keysDir, 1), 16);
  // Manufacturer (transport) master keys: the factory key sets of the cards they made derive from them.
  const transports: { id: string; kcv: string }[] = [];
  for (const file of o.manufacturerKeyFiles ?? []) {
    const key = readMasterKeyFile(file);
    try {
      const id = transportKeyId(key);
      if (!transports.some((t) => t.id === id)) {
        writeSecretFile(transportMasterPath(paths.keysDir, id), toHex(key) + '\n');
        transports.push({ id, kcv: toHex(aesKcv(key)) });
      }
    } finally {
      wipe(key);
    }
  }

  const config: OperatorConfig = {
    ...DEFAULT_CONFIG,
    ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
    ...(isPgUrl(target) ? { store: redactStoreUrl(target) } : {}),
  };
  writeFileSync(paths.config, JSON.stringify(config, null, 2) + '\n');

  const store = await openStore(target);
  let adminToken: string;
  try {
    await store.putCa({ id: randomUUID(), role: 'issuing', certDer: issuing.ca.certDer, keyRef: 'file:ca.key', notAfter: issuing.ca.notAfter, createdAt: now });
    await store.putCa({ id: randomUUID(), role: 'tls', certDer: tlsCa.ca.certDer, keyRef: 'file:tls-ca.key', notAfter: tlsCa.ca.notAfter, createdAt: now });
    await store.putMasterKey({ id: randomUUID(), purpose: 'admin', version: 1, kcv: masterKcv, source: 'file:keys/admin-master-v1.key', createdAt: now });
    for (const [i, t] of transports.entries()) {
      await store.putMasterKey({ id: randomUUID(), purpose: 'transport', version: i + 1, kcv: t.kcv, source: `file:keys/transport-${t.id}.key`, createdAt: now });
    }
    adminToken = (await createApiToken(store, 'admin', 'admin', now)).token;
  } finally {
    await store.close();
  }
  writeSecretFile(paths.adminToken, adminToken + '\n');

  const op = await Operator.open({ dir: paths.dir, store: target });
  let trusted = 0;
  try {
    for (const pem of o.manufacturerCaPems ?? []) trusted += (await op.trustManufacturer(pem)).length;
    await op.revocation.regenerate(); // the first CRL (number 1)
    trusted = (await op.store.listManufacturerCas()).length;
  } finally {
    await op.close();
  }
  return { paths, adminToken, caFingerprint: issuing.ca.nodeCert.fingerprint256, masterKcv, trustedManufacturers: trusted, transportKeyIds: transports.map((t) => t.id), store: redactStoreUrl(target) };
}
