/**
 * cli/operator-quickstart: the README's two commands that bring up an operator and an enrolled
 * device on one machine.
 *   `setls operator up`     — the operator of `--dir` (made on first run by `operator init`, trusting
 *                             the local manufacturer of `--manufacturer-dir`: its CA for attestation,
 *                             its master key for the cards' factory keys), then `operator serve`.
 *   `setls operator device` — a card in `--card-dir` (made on first run by `card init` with that
 *                             manufacturer), its manifest entry imported, an agent token of its own
 *                             (`<card-dir>.agent-token`, 0600), `serve https --operator` (TLS in the
 *                             card, the agent on its own logical channel), then `operator enrol --wait`
 *                             unless the card is enrolled already; it keeps serving.
 * Nothing here is a shortcut around the operator: the device is enrolled through the same API, relay
 * and SCP03 scripts as any other. imports cli/ (card, serve, operator commands) and operator/.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SetlsError } from '../bytes/index.js';
import { createAgentToken } from '../operator/auth/agent-tokens.js';
import { writeSecretFile } from '../operator/keys/secret-files.js';
import { initOperator } from '../operator/init.js';
import { Operator } from '../operator/operator.js';
import { DEFAULT_OPERATOR_DIR, operatorPaths } from '../operator/paths.js';
import { cardPaths } from './card-files.js';
import { cardManifestEntry, DEFAULT_MANUFACTURER_DIR } from './card-factory.js';
import { initCard } from './card-setup.js';
import { openManufacturer } from './manufacturer.js';
import { OperatorClient } from './operator-client.js';
import { parsePortArg, serveOperator, serveOptions, waitJob, type ServeFlags } from './operator-commands.js';
import { startHttps } from './serve.js';

export const DEFAULT_DEVICE_DIR = '.setls/device';
export const DEFAULT_DEVICE_PORT = 8444;

type J = Record<string, unknown>;

export function registerOperatorQuickstart(op: Command): void {
  serveOptions(op.command('up').description('quick start: init the operator on first run (trusting the local manufacturer), then serve it'))
    .option('--manufacturer-dir <dir>', 'the local manufacturer the operator trusts (made on first use)', DEFAULT_MANUFACTURER_DIR)
    .action(async (o: ServeFlags & { manufacturerDir: string }) => {
      const paths = operatorPaths(o.dir);
      if (!existsSync(paths.db)) {
        const m = await openManufacturer(o.manufacturerDir);
        await initOperator({ dir: o.dir, manufacturerCaPems: [readFileSync(join(m.dir, 'ca.crt'), 'utf8')], manufacturerKeyFiles: [m.masterKeyPath] });
        console.log(`operator created in ${paths.dir} (trusts the manufacturer in ${m.dir}; admin token ${paths.adminToken})`);
      }
      await serveOperator(o);
    });

  op.command('device')
    .description('quick start: a card behind `serve https --operator`, enrolled by the operator of --dir (made on first run; keeps serving)')
    .option('--dir <dir>', 'the operator state folder (its admin token, CA files and serve.json)', DEFAULT_OPERATOR_DIR)
    .option('--card-dir <dir>', 'the card state folder (made on first run)', DEFAULT_DEVICE_DIR)
    .option('--manufacturer-dir <dir>', 'the local manufacturer that makes the card', DEFAULT_MANUFACTURER_DIR)
    .option('--port <n>', 'HTTPS port of the device', parsePortArg, DEFAULT_DEVICE_PORT)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--host-id <id>', "the device agent's host id", 'quickstart-device')
    .action(async (o: { dir: string; cardDir: string; manufacturerDir: string; port: number; host: string; hostId: string }) => {
      const paths = operatorPaths(o.dir);
      if (!existsSync(paths.db)) throw new SetlsError('ERR_OP_STATE_MISSING', `no operator in ${paths.dir}: run \`setls operator up\` first`);
      const client = new OperatorClient({ dir: o.dir });
      if (!existsSync(cardPaths(o.cardDir).keyFile)) {
        const r = await initCard({ cardDir: o.cardDir, manufacturerDir: o.manufacturerDir });
        console.log(`card ${r.uid} made in ${r.paths.dir}`);
      }
      const entry = await cardManifestEntry({ cardDir: o.cardDir, manufacturerDir: o.manufacturerDir });
      await client.ok('POST', '/v1/manifests', { cards: [entry] }, { idempotencyKey: randomUUID() });
      const tokenFile = `${cardPaths(o.cardDir).dir}.agent-token`;
      const operator = await Operator.open({ dir: o.dir });
      try {
        rmSync(tokenFile, { force: true }); // a new token replaces the host's old one
        writeSecretFile(tokenFile, (await createAgentToken(operator.store, o.hostId, operator.now())) + '\n');
      } finally {
        await operator.close();
      }
      const running = await startHttps({
        cardDir: o.cardDir,
        port: o.port,
        host: o.host,
        backlog: 16,
        operator: client.url,
        operatorCa: paths.tlsCaCert,
        operatorTokenFile: tokenFile,
        hostId: o.hostId,
      });
      const stop = (): void => {
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      console.log(`setls: serving HTTPS through the card at ${running.url} (device agent ${o.hostId} polling ${client.url})`);
      const card = await client.ok<J>('GET', `/v1/cards/${entry.uid}`);
      if (card['state'] === 'manifest') {
        const r = await client.ok<{ job: J }>('POST', `/v1/cards/${entry.uid}/enrol`, {}, { idempotencyKey: randomUUID() });
        try {
          await waitJob(client, r.job, {});
        } catch (e) {
          await running.close();
          throw e;
        }
      }
      console.log(`device ${entry.uid} enrolled by the operator at ${client.url}`);
      console.log(`  try: curl --cacert ${paths.caCert} ${running.url}status`);
    });
}
