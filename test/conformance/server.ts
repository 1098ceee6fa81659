/**
 * A real `setls` HTTPS server for the negative-conformance tests: a fresh emulated card (made as
 * `setls card init` makes it), an optional card policy, the record layer in the card or exported to
 * the host (TLS-Tandem), listening on 127.0.0.1 port 0 — the same start-up path as `setls serve https`.
 * imports the interop test helpers and src/cli, src/host (tests may).
 */
import { openCard, readOperatorPin, DEFAULT_IDENTITY } from '../../src/cli/card-setup.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { CardClient, type CardPolicy } from '../../src/host/index.js';
import { makeTestCard, startTestHttps, type TestCard } from '../interop/helpers.js';

export interface ConformanceServer {
  readonly port: number;
  readonly card: TestCard;
  readonly https: RunningHttps;
  close(): Promise<void>;
}

export async function startServer(opts: { policy?: CardPolicy; recordLayer?: 'card' | 'host' } = {}): Promise<ConformanceServer> {
  const card = await makeTestCard();
  try {
    if (opts.policy || opts.recordLayer === 'host') {
      const admin = openCard({ cardDir: card.cardDir });
      try {
        const c = new CardClient(admin.transport);
        await c.select();
        await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
        if (opts.policy) await c.putPolicy(opts.policy);
        if (opts.recordLayer === 'host') await c.putIdentityPolicy({ label: DEFAULT_IDENTITY, exportAllowed: true });
      } finally {
        await admin.transport.close();
        admin.card.close();
      }
    }
    const https = await startTestHttps(card, undefined, opts.recordLayer ? { recordLayer: opts.recordLayer } : {});
    return {
      port: https.port,
      card,
      https,
      close: async () => {
        await https.close();
        card.cleanup();
      },
    };
  } catch (e) {
    card.cleanup();
    throw e;
  }
}
