/**
 * Encoded words (RFC 2047, with RFC 2231 §5 language tags): decoding, and
 * the form of a name a reader sees, for comparisons that must not be fooled
 * by look-alikes.
 *
 * Decoding is lenient on purpose: readers decode encoded words in places
 * RFC 2047 does not allow (inside quoted strings, without white space
 * around), so we decode wherever they are. An unknown charset is read as
 * UTF-8 (readers fall back to a default charset rather than show the
 * encoded word, and "@" and "." are the same bytes in every ASCII-based
 * one). Linear: one regular expression pass without nested repetition.
 */

const ENCODED_WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g;
/** White space between two encoded words is not shown (RFC 2047 §6.2). */
const BETWEEN_WORDS = /(\?=)[ \t\r\n]+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)/g;

function decodeWord(charset: string, encoding: string, text: string): string {
  let bytes: Buffer;
  if (encoding === "b" || encoding === "B") {
    bytes = Buffer.from(text, "base64");
  } else {
    bytes = Buffer.from(
      text.replace(/_/g, " ").replace(/=([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      "latin1",
    );
  }
  const cs = charset.toLowerCase();
  if (cs === "utf-7" || cs === "unicode-1-1-utf-7") return decodeUtf7(bytes.toString("latin1"));
  try {
    const decoder = new TextDecoder(cs);
    // The WHATWG "replacement" encoding (iso-2022-kr, hz-gb-2312, ...) yields one U+FFFD; readers that know the charset show ASCII as it is.
    if (decoder.encoding !== "replacement") return decoder.decode(bytes);
    return new TextDecoder("utf-8").decode(bytes);
  } catch {
    return new TextDecoder("utf-8").decode(bytes); // unknown charset: as a reader's fallback would
  }
}

/**
 * UTF-7 (RFC 2152), which TextDecoder does not know but some readers
 * decode in headers: "+" base64 of UTF-16BE "-"; "+-" is "+". Linear.
 */
function decodeUtf7(text: string): string {
  return text.replace(/\+([A-Za-z0-9+/]*)-?/g, (_, b64: string) => {
    if (b64 === "") return "+";
    const bytes = Buffer.from(b64, "base64");
    let out = "";
    for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
    return out;
  });
}

/** Text with every encoded word decoded. */
export function decodeEncodedWords(text: string): string {
  if (!text.includes("=?")) return text;
  return text.replace(BETWEEN_WORDS, "$1").replace(ENCODED_WORD, (_, charset: string, enc: string, body: string) => decodeWord(charset, enc, body));
}

/**
 * Characters that look like "@" or "." but are not, after NFKC (which
 * already maps the fullwidth and small forms, e.g. U+FF20 and U+FE6B):
 * from Unicode's confusables for COMMERCIAL AT and FULL STOP, and the
 * dots IDNA treats as label separators.
 */
const CONFUSABLES: Readonly<Record<string, string>> = {
  "\u3002": ".", // ideographic full stop (IDNA label separator)
  "\u0660": ".", // arabic-indic digit zero
  "\u06f0": ".", // extended arabic-indic digit zero
  "\u0701": ".", // syriac supralinear full stop
  "\u0702": ".", // syriac sublinear full stop
  "\u2024": ".", // one dot leader
  "\u2e31": ".", // word separator middle dot
  "\ua4f8": ".", // lisu letter tone mya ti
  "\ua60e": ".", // vai full stop
  "\u00b7": ".", // middle dot
  "\u2027": ".", // hyphenation point
  "\u30fb": ".", // katakana middle dot
  "\u2219": ".", // bullet operator
  "\u22c5": ".", // dot operator
};
const CONFUSABLE_CHARS = new RegExp(`[${Object.keys(CONFUSABLES).join("")}]`, "g");

/**
 * The text as a reader may take it, for finding addresses in names:
 * encoded words decoded, NFKC, confusables of "@" and "." mapped to them,
 * format characters and combining marks removed, and white space around
 * "@" and "." removed ("ceo @ bank . test" reads as an address).
 */
export function readerForm(text: string): string {
  return decodeEncodedWords(text)
    .normalize("NFKC")
    .replace(CONFUSABLE_CHARS, (c) => CONFUSABLES[c] ?? c)
    .replace(/[\p{Cf}\p{M}]/gu, "")
    .replace(/\s+/g, (run: string, at: number, all: string) => (AT_OR_DOT.has(all[at - 1] ?? "") || AT_OR_DOT.has(all[at + run.length] ?? "") ? "" : " "));
}

const AT_OR_DOT = new Set(["@", "."]);
