/**
 * factory/: the manufacturer's side of a setls card's factory personalisation — APDUs out, answers
 * in, never card code (docs/admin-protocol.md §8). imports bytes/ and gp/.
 */
export * from './personalise.js';
