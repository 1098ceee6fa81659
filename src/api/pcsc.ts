/**
 * `setls/pcsc`: cards in PC/SC readers (pcsc-lite's pcscd), and the emulated card presented to a real
 * pcscd through vsmartcard's vpcd (docs/pcsc.md). The optional npm package `smartcard` is loaded on
 * first use; without it, ERR_TRANSPORT_PCSC_UNAVAILABLE.
 *
 *   const transport = await PcscTransport.open({ reader: 'Virtual PCD 00 00' });
 *   createServer({ transport, pinFile: '.setls/card.pin' }, app)   // or simply { reader, cardDir }
 *
 * imports transport/ and cli/card-serve.ts.
 */
export { PcscTransport, listPcscReaders, loadPcsc, type PcscReaderInfo, type PcscTransportOptions } from '../transport/pcsc.js';
export { startCardServe as serveCardToPcscd, type CardServeOptions, type RunningCard } from '../cli/card-serve.js';
