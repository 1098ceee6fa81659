// Koa over a card: app.callback() is the request handler of the setls server.
//   npm install setls koa
//   npx setls card init --card-dir .setls/card
//   node koa.mjs                                     # curl --cacert .setls/ca/ca.crt https://localhost:8443/
import Koa from 'koa';
import { createServer } from 'setls';

const app = new Koa();
app.use((ctx) => {
  ctx.body = {
    hello: 'from koa, over TLS that ends in the card',
    secure: ctx.secure, // true: the socket is encrypted
    protocol: ctx.req.socket.getProtocol(),
    cipher: ctx.req.socket.getCipher()?.name,
  };
});

const server = createServer({ cardDir: process.env.SETLS_CARD_DIR ?? '.setls/card' }, app.callback());
server.on('error', (err) => {
  console.error(`cannot serve: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
});
server.listen(Number(process.env.PORT ?? 8443), '127.0.0.1', () => {
  console.log(`koa on https://localhost:${server.address().port}/`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
