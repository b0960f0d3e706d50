/**
 * Job ids are UUIDs. Checked before they reach a `::uuid` cast, so that a
 * mistyped id is answered as bad input naming it, not as a database error.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID in its usual hyphenated form (any case). */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}
