/**
 * Just enough of RFC 5322 for the SMTP sink: the header block split from
 * the body, folded lines joined, and RFC 2047 encoded words in a header
 * decoded. Bodies are kept raw (MIME parts and transfer encodings are left
 * to whoever reads them): the sink is for tests and the dev stack, not a
 * mail client.
 */

/** The headers of a message, names lower-cased; a repeated one keeps its first value. */
export type MessageHeaders = Readonly<Record<string, string>>;

/** A raw message split into its headers and its (still encoded) body. */
export interface ParsedMessage {
  headers: MessageHeaders;
  body: string;
}

const HEADER_END = /\r?\n\r?\n/;
const FOLDED_LINE = /\r?\n[ \t]+/g;
const ENCODED_WORD = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g;
const WHITESPACE_BETWEEN_ENCODED_WORDS = /(\?=)\s+(=\?)/g;

/** Splits `raw` at its first blank line and reads the header block. */
export function parseMessage(raw: string): ParsedMessage {
  const match = HEADER_END.exec(raw);
  const headerBlock = match ? raw.slice(0, match.index) : raw;
  const body = match ? raw.slice(match.index + match[0].length) : '';
  return { headers: parseHeaders(headerBlock), body };
}

function parseHeaders(block: string): MessageHeaders {
  const headers: Record<string, string> = {};
  for (const line of block.replace(FOLDED_LINE, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name in headers) continue;
    headers[name] = decodeEncodedWords(line.slice(colon + 1).trim());
  }
  return headers;
}

/**
 * Decodes RFC 2047 encoded words (`=?UTF-8?Q?Pago_pr=C3=B3ximo?=`), as
 * nodemailer writes a subject that is not plain ASCII. Whitespace between
 * two encoded words is dropped, as the RFC says.
 */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(WHITESPACE_BETWEEN_ENCODED_WORDS, '$1$2')
    .replace(ENCODED_WORD, (word, charset: string, encoding: string, text) =>
      decodeWord(word, charset, encoding, text),
    );
}

function decodeWord(
  word: string,
  charset: string,
  encoding: string,
  text: string,
): string {
  const bytes =
    encoding.toUpperCase() === 'B'
      ? Buffer.from(text, 'base64')
      : decodeQ(text);
  try {
    return new TextDecoder(charset.toLowerCase()).decode(bytes);
  } catch {
    // An unknown charset: leave the word as it came rather than guess.
    return word;
  }
}

function decodeQ(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '_') {
      bytes.push(0x20);
    } else if (
      char === '=' &&
      /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))
    ) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(char.charCodeAt(0));
    }
  }
  return Buffer.from(bytes);
}
