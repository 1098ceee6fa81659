// The security domain against its relay: 10⁴ single-bit and single-byte mutations of relayed
// C-APDUs, each refused with the state unchanged — on the ISD applet alone ('fake'); the real
// EmulatedCard is security-mutations-card.test.ts (test/card/isd/security-cases.ts).
import { securityTests } from './security-cases.js';

securityTests('mutations', ['fake']);
