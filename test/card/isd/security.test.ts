// The security domain against its relay: replay, instruction swap, drop/duplicate/reorder, swallowed
// or forged responses, INITIALIZE UPDATE tampering (test/card/isd/security-cases.ts).
import { securityTests } from './security-cases.js';

securityTests('rest');
