/**
 * Error texts as a viewer reads them. An error may quote the payload (a
 * name, an address the job was about) or what the job read (the mailer
 * names the recipient it was refused), so for viewers every text of the
 * payload's personal fields, and anything shaped like an e-mail address,
 * is replaced with `[redacted]` in `last_error` and in each attempt's
 * error. A payload without a schema to read the marks from counts as
 * personal throughout, as its view does.
 */
import { REDACTED, redactPersonal } from '@lana-jobs/core';
import type { z } from 'zod';

/**
 * Texts shorter than this are not searched for: a single character would
 * shred the message and names no one.
 */
const PERSONAL_TEXT_MIN_LENGTH = 2;

/** An e-mail address, loosely: redacting too much is the safe mistake. */
const EMAIL =
  /[^\s<>()[\]{}"'`,;:@]+@[^\s<>()[\]{}"'`,;:@]+\.[^\s<>()[\]{}"'`,;:@]+/g;

/**
 * The string values of the fields `schema` marks personal in `payload`
 * (every string of the payload without a schema), longest first, so that a
 * text containing another is replaced whole.
 */
export function personalTexts(
  schema: z.ZodType | undefined,
  payload: unknown,
): string[] {
  const found = new Set<string>();
  if (schema) collectRedacted(payload, redactPersonal(schema, payload), found);
  else collectStrings(payload, found);
  return [...found]
    .filter((text) => text.length >= PERSONAL_TEXT_MIN_LENGTH)
    .sort((a, b) => b.length - a.length);
}

/** `text` with each personal text and e-mail address replaced. */
export function redactText(
  text: string | null,
  personal: readonly string[],
): string | null {
  if (text === null) return null;
  let out = text;
  for (const value of personal) out = out.replaceAll(value, REDACTED);
  return out.replace(EMAIL, REDACTED);
}

/**
 * Walks the payload beside its redacted copy: where the copy says
 * `[redacted]` and the original did not, the original held personal data.
 */
function collectRedacted(
  original: unknown,
  redacted: unknown,
  found: Set<string>,
): void {
  if (redacted === REDACTED && original !== REDACTED) {
    return collectStrings(original, found);
  }
  if (typeof original !== 'object' || original === null) return;
  if (typeof redacted !== 'object' || redacted === null) return;
  const copy = redacted as Record<string, unknown>;
  for (const [key, value] of Object.entries(original)) {
    collectRedacted(value, copy[key], found);
  }
}

function collectStrings(value: unknown, found: Set<string>): void {
  if (typeof value === 'string') found.add(value);
  else if (typeof value === 'number') found.add(String(value));
  else if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) collectStrings(inner, found);
  }
}
