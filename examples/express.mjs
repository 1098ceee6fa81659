// Express over a card: the TLS server is the card's; Express does not notice.
//   npm install setls express
//   npx setls card init --card-dir .setls/card      # once: a card, its PIN file, a local CA
//   node express.mjs                                 # curl --cacert .setls/ca/ca.crt https://localhost:8443/
import express from 'express';
import { createServer } from 'setls';

const app = express();
app.get('/', (req, res) => {
  res.json({
    hello: 'from express, over TLS that ends in the card',
    secure: req.secure, // Express sees an encrypted socket: req.protocol is 'https'
    protocol: req.socket.getProtocol(), // 'TLSv1.3'
    cipher: req.socket.getCipher()?.name, // e.g. 'TLS_AES_256_GCM_SHA384'
  });
});

const server = createServer({ cardDir: process.env.SETLS_CARD_DIR ?? '.setls/card' }, app);
server.on('error', (err) => {
  console.error(`cannot serve: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
});
server.listen(Number(process.env.PORT ?? 8443), '127.0.0.1', () => {
  console.log(`express on https://localhost:${server.address().port}/`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
