// The security domain against its relay: 10⁴ single-bit and single-byte mutations of relayed
// C-APDUs, each refused with the state unchanged — through the real EmulatedCard ('card': card OS,
// logical channels, sealed store) (test/card/isd/security-cases.ts).
import { securityTests } from './security-cases.js';

securityTests('mutations', ['card']);
