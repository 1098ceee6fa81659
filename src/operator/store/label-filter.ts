/**
 * operator/store/label-filter: the SQL term of a card label filter — `key` (the label is present) or
 * `key=value` — on a JSON labels column, in either dialect. Shared by the card listing, the
 * expiring-cards listing and the console's fleet query. imports store/driver (types).
 */
import type { SqlValue } from './driver.js';

/** How a dialect reads one text field of a JSON column (the key bound as the following `?`). */
export interface JsonFieldDialect {
  jsonText(column: string): string;
  jsonKeyParam(key: string): string;
}

/** The term testing `label` on the JSON column `column`; its parameters are appended to `params`. */
export function labelTerm(sql: JsonFieldDialect, column: string, label: string, params: SqlValue[]): string {
  const eq = label.indexOf('=');
  if (eq < 0) {
    params.push(sql.jsonKeyParam(label));
    return `${sql.jsonText(column)} IS NOT NULL`;
  }
  params.push(sql.jsonKeyParam(label.slice(0, eq)), label.slice(eq + 1));
  return `${sql.jsonText(column)} = ?`;
}
