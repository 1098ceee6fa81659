// Fastify over a card: its serverFactory returns the setls server (the TLS server is the card's).
//   npm install setls fastify
//   npx setls card init --card-dir .setls/card
//   node fastify.mjs                                 # curl --cacert .setls/ca/ca.crt https://localhost:8443/
import Fastify from 'fastify';
import { createServer } from 'setls';

const fastify = Fastify({
  serverFactory: (handler) => createServer({ cardDir: process.env.SETLS_CARD_DIR ?? '.setls/card' }, handler),
});
fastify.get('/', async (request) => ({
  hello: 'from fastify, over TLS that ends in the card',
  protocol: request.raw.socket.getProtocol(),
  cipher: request.raw.socket.getCipher()?.name,
}));

// An IP address, not 'localhost' (for 'localhost' Fastify opens a second server per address, and
// a card folder has one owner).
try {
  await fastify.listen({ port: Number(process.env.PORT ?? 8443), host: '127.0.0.1' });
} catch (err) {
  console.error(`cannot serve: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
}
console.log(`fastify on https://localhost:${fastify.server.address().port}/`);
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => fastify.close().then(() => process.exit(0)));
