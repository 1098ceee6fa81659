/**
 * operator/audits/keys: the key checks — shared-key (one SPKI hash held by two cards: as identity
 * keys — which the registry's unique index already refuses at enrolment — or as a card's factory
 * attestation key, i.e. a cloned secure element or a manufacturer reusing a key, or one card's
 * identity key being another's attestation key) and factory-keys-unrotated (an enrolled card still
 * administered with the manufacturer's factory key set, KVN 30, longer than the grace period after
 * its first certificate: e.g. enrolled zero-touch over EST and never taken over by an admin job).
 * imports audits/types, store/types, keys/master-keys, bytes/.
 */
import { toHex } from '../../bytes/index.js';
import { FACTORY_KVN } from '../keys/master-keys.js';
import type { FindingReport } from '../store/types.js';
import { CheckName, iso, type AuditCheck } from './types.js';

export const sharedKey: AuditCheck = {
  name: CheckName.sharedKey,
  async run({ store, config }) {
    const groups = await store.auditSharedKeys(config.maxPerCheck);
    const reports: FindingReport[] = groups.map((g) => {
      const cards = [...new Set(g.holders.map((h) => h.cardId))];
      return {
        check: CheckName.sharedKey,
        subject: toHex(g.spkiSha256),
        // a key shared by several cards is about none of them alone
        cardId: null,
        severity: 'critical',
        detail: { spkiSha256: toHex(g.spkiSha256), cards: cards.length, holders: g.holders.map((h) => ({ card: toHex(h.uid), as: h.as })) },
      };
    });
    return { reports, truncated: groups.length >= config.maxPerCheck };
  },
};

export const factoryKeysUnrotated: AuditCheck = {
  name: CheckName.factoryKeysUnrotated,
  async run({ store, now, config }) {
    const rows = await store.auditCardsWithKvn(FACTORY_KVN, now - config.factoryKeysGraceMs, config.maxPerCheck);
    const reports: FindingReport[] = rows.map((c) => ({
      check: CheckName.factoryKeysUnrotated,
      subject: toHex(c.uid),
      cardId: c.cardId,
      severity: 'high',
      detail: { kvn: c.kvn.toString(16), cardState: c.lifecycle, enrolledAt: c.enrolledAt === null ? null : iso(c.enrolledAt), graceHours: config.factoryKeysGraceMs / 3_600_000 },
    }));
    return { reports, truncated: rows.length >= config.maxPerCheck };
  },
};
