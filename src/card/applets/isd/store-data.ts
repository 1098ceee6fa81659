/**
 * card/applets/isd/store-data: STORE DATA `80|84 E2 P1 P2 Lc <block> [00]` — blocks reassembled per
 * channel (gp/store-data.ts: P2 = 00, 01, … consecutive, P1 b8 = last block, structure BER-TLV),
 * then the request, exactly one BER-TLV whose tag names the function, dispatched to its handler;
 * the answer is one TLV with the same tag. Access: operator functions inside an SCP03 session at
 * level 33 (else 6982); factory functions in OP_READY without secure messaging (else 6985, for
 * ever once SECURED); a TERMINATED card answers only GetCardInfo and ReadAuditLog.
 * Zero-touch enrolment: while the card is SECURED and holds NO operator root anchor, the
 * PLAIN_ENROLMENT_FUNCTIONS (GenerateIdentityKey, AttestKey, CreateCSR, InstallCertificateChain,
 * ActivateIdentity) also run without secure messaging, audited as plainFunctionExecuted, with at
 * most IsdLimits.plainKeyGenerationsPerPowerCycle successful key generations per power cycle
 * (beyond: 6983 until the next power-on). Once an anchor exists, plain is refused (6982).
 * imports bytes/, gp/, gp/admin, isd siblings.
 */
import { encodeBerTlv, parseBerTlvs, wipe } from '../../../bytes/index.js';
import { CardLifecycle, FACTORY_FUNCTIONS, Fn, IsdSw, PLAIN_ENROLMENT_FUNCTIONS, READ_ONLY_FUNCTIONS } from '../../../gp/admin/constants.js';
import { AdminFormatError, readFields } from '../../../gp/admin/fields.js';
import type { RawCommand } from '../../../gp/command-apdu.js';
import { StoreDataP1, type StoreDataAssembler } from '../../../gp/store-data.js';
import { ok, requireAdmin, type CommandContext, type IsdResponse } from './context.js';
import { refuse } from './errors.js';
import { FACTORY_HANDLERS } from './factory.js';
import { CARD_FUNCTIONS } from './functions-card.js';
import type { FunctionHandler } from './functions-common.js';
import { IDENTITY_FUNCTIONS } from './functions-identity.js';
import { TRUST_FUNCTIONS } from './functions-trust.js';

const OPERATOR: ReadonlyMap<number, FunctionHandler> = new Map([...CARD_FUNCTIONS, ...IDENTITY_FUNCTIONS, ...TRUST_FUNCTIONS]);

/** P1 structure bits: BER-TLV (b5) and DGI (b4). */
const STRUCTURE = StoreDataP1.berTlv | StoreDataP1.dgi;

/** The plain key generations of this power cycle (RAM, zeroed at power-on by the applet). */
export interface PlainBudget {
  /** Whether one more plain key generation is allowed. */
  readonly left: () => boolean;
  /** Counts a successful plain key generation. */
  readonly spend: () => void;
}

/** Whether a command without secure messaging may run the plain enrolment functions. */
export function plainAllowed(ctx: Pick<CommandContext, 'platform' | 'secured'>): boolean {
  const r = ctx.platform.record();
  return !ctx.secured && r.lifecycle === CardLifecycle.secured && r.operatorRoot === undefined;
}

export function storeData(ctx: CommandContext, c: RawCommand, assembler: StoreDataAssembler, budget: PlainBudget): IsdResponse {
  const lifecycle = ctx.platform.record().lifecycle;
  const factory = lifecycle === CardLifecycle.opReady && !ctx.secured;
  if (!factory) {
    if (lifecycle === CardLifecycle.opReady) refuse(IsdSw.conditionsNotSatisfied, 'OP_READY: factory functions only');
    if (!ctx.plain) requireAdmin(ctx);
  }
  if ((c.p1 & STRUCTURE) !== StoreDataP1.berTlv) refuse(IsdSw.wrongP1P2, 'STORE DATA: BER-TLV structure (P1 b5) required');
  const step = assembler.accept(c.p1, c.p2, c.data);
  if ('error' in step) return refuse(step.sw, step.why);
  if (!step.done) return ok();
  const request = step.data;
  try {
    let items;
    try {
      items = parseBerTlvs(request, 2);
    } catch {
      return refuse(IsdSw.wrongData, 'STORE DATA: the request is not BER-TLV');
    }
    if (items.length !== 1) refuse(IsdSw.wrongData, 'STORE DATA: exactly one function request per sequence');
    const { tag, value } = items[0]!;
    let handler: FunctionHandler | undefined;
    if (ctx.plain && !PLAIN_ENROLMENT_FUNCTIONS.has(tag)) refuse(IsdSw.securityStatusNotSatisfied, 'needs an SCP03 session at security level 33');
    if (FACTORY_FUNCTIONS.has(tag)) {
      if (!factory) refuse(IsdSw.conditionsNotSatisfied, 'factory functions are refused once the card left OP_READY');
      handler = FACTORY_HANDLERS.get(tag);
    } else {
      if (factory) refuse(IsdSw.conditionsNotSatisfied, 'OP_READY: factory functions only');
      if (lifecycle === CardLifecycle.terminated && !READ_ONLY_FUNCTIONS.has(tag)) refuse(IsdSw.conditionsNotSatisfied, 'the card is terminated');
      if (ctx.plain && tag === Fn.generateIdentityKey && !budget.left()) refuse(IsdSw.plainLimitReached, 'no more key generations without secure messaging until the next power-on');
      handler = OPERATOR.get(tag);
    }
    if (!handler) return refuse(IsdSw.referencedDataNotFound, `no function ${tag.toString(16)}`);
    let fields;
    try {
      fields = readFields(value, handler.rule, `function ${tag.toString(16)}`);
    } catch (e) {
      if (e instanceof AdminFormatError) return refuse(IsdSw.wrongData, e.message);
      throw e;
    }
    try {
      const answer = ok(encodeBerTlv(tag, handler.run(ctx, fields)));
      if (ctx.plain && tag === Fn.generateIdentityKey) budget.spend();
      return answer;
    } finally {
      for (const vs of fields.values()) for (const v of vs) wipe(v);
      wipe(value);
    }
  } finally {
    wipe(request);
  }
}
