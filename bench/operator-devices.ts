/**
 * The device side of bench/operator.ts, in a process of its own: K emulated cards (the real card OS
 * with its security domain, made like `setls card init` and personalised by the factory sequence
 * with a bench manufacturer), each behind its own device agent (one dialog at a time per agent, so
 * one agent per card lets the operator enrol them in parallel). Card 0 is also served over HTTPS
 * (`serve https --operator`: TLS in the card, the agent on its own logical channel) for the
 * lock-to-refusal probe. JSON lines on stdout, commands on stdin:
 *   out {"cards": {manufacturerPem, masterKeyFile, manifest}}     in {"operator": {url, caPem, tokens}}
 *   out {"devices": {httpsPort}}                                    in (stdin closed) → stop, exit
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DeviceAgent } from '../src/agent/index.js';
import { openCard } from '../src/cli/card-setup.js';
import { startHttps, type RunningHttps } from '../src/cli/serve.js';
import { makeRealCard, manufacturerOf, type RealCard } from '../test/operator/real-card.js';

const [root, kText] = process.argv.slice(2);
const K = Number(kText);
if (!root || !Number.isInteger(K) || K < 1) {
  process.stderr.write('usage: operator-devices.ts ROOT K\n');
  process.exit(2);
}
const say = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + '\n');

const cards: RealCard[] = [];
mkdirSync(root, { recursive: true });
const mdir = join(root, 'manufacturer');
for (let i = 0; i < K; i++) cards.push(await makeRealCard(join(root, `card${i}`), mdir, { caDir: join(root, 'local-ca') }));
const m = manufacturerOf(mdir);
say({ cards: { manufacturerPem: m.caPem, masterKeyFile: m.masterKeyFile, manifest: cards.map((c) => c.manifestEntry(true)) } });

const lines = createInterface({ input: process.stdin });
let https: RunningHttps | undefined;
const agents: { agent: DeviceAgent; close: () => void }[] = [];
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  for (const a of agents) {
    await a.agent.stop();
    a.close();
  }
  await https?.close();
  process.exit(0);
};
lines.on('close', () => void stop());
lines.on('line', (line) => {
  void (async () => {
    const msg = JSON.parse(line) as { operator?: { url: string; caPem: string; tokens: Record<string, string> } };
    if (!msg.operator) return;
    const op = msg.operator;
    const caFile = join(root, 'operator-ca.pem');
    writeFileSync(caFile, op.caPem);
    const tokenFile = join(root, 'agent-0.token');
    writeFileSync(tokenFile, op.tokens['bench-0']! + '\n', { mode: 0o600 });
    https = await startHttps({ cardDir: cards[0]!.cardDir, port: 0, host: '127.0.0.1', backlog: 64, operator: op.url, operatorCa: caFile, operatorTokenFile: tokenFile, hostId: 'bench-0' }, silentLog());
    for (let i = 1; i < K; i++) {
      const opened = openCard({ cardDir: cards[i]!.cardDir });
      const agent = await DeviceAgent.start({ operatorUrl: op.url, ca: op.caPem, token: op.tokens[`bench-${i}`]!, hostId: `bench-${i}`, cards: [{ transport: opened.transport }] });
      agents.push({ agent, close: () => opened.card.close() });
    }
    say({ devices: { httpsPort: https.port } });
  })().catch((e: unknown) => {
    process.stderr.write(`operator-devices: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
});

function silentLog(): Parameters<typeof startHttps>[1] {
  // pino-compatible, quiet: the bench reads numbers, not logs
  const noop = (): void => undefined;
  const l = { info: noop, warn: noop, error: noop, debug: noop, trace: noop, fatal: noop, child: () => l } as unknown as NonNullable<Parameters<typeof startHttps>[1]>;
  return l;
}
