/**
 * gp/admin/constants: the setls administration protocol spoken with the card's security domain
 * (docs/admin-protocol.md). The protocol's data — AID, GET DATA tags, lifecycle codes, STORE DATA
 * function and field tags, signed structures, audit events, bounds — is written once in
 * protocol/isd.ts and re-exported here; what builds on SCP03's own constants (gp/params.ts,
 * gp/errors.ts) stays in gp: the instruction bytes and status words of the security domain.
 * imports gp/errors, gp/params and protocol/.
 */
import { GpSw } from '../errors.js';
import { GpIns } from '../params.js';

export * from '../../protocol/isd.js';
/** ResetPin PIN references (`83`): the setls applet's VERIFY references. */
export { PinRef } from '../../protocol/setls.js';

/** Instruction bytes the security domain answers: SCP03's (gp/params.ts) and the GP card-content ones. */
export const IsdIns = {
  ...GpIns,
  select: 0xa4,
  getData: 0xca,
  getStatus: 0xf2,
  setStatus: 0xf0,
} as const;

/** Status words the security domain answers: SCP03's (gp/errors.ts) and a few more (ISO 7816-4 §5.6). */
export const IsdSw = {
  ...GpSw,
  logicalChannelNotSupported: 0x6881,
  functionNotSupported: 0x6a81,
  dataAlreadyExists: 0x6a89,
  /** Zero-touch enrolment: the key generations without secure messaging of this power cycle are used up. */
  plainLimitReached: 0x6983,
  noPreciseDiagnosis: 0x6f00,
} as const;

