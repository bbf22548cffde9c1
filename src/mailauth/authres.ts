/**
 * Authentication-Results (RFC 8601): reading the authserv-id of an incoming
 * header, and removing the incoming ones that claim to be ours (§5: a
 * forged result with our id must never reach the reader or a filter that
 * trusts our id).
 *
 * Grammar (§2.2): authres-header = "Authentication-Results:" [CFWS]
 * authserv-id [ CFWS authres-version ] ( no-result / 1*resinfo ) [CFWS] CRLF,
 * authserv-id = value (RFC 2045: token or quoted-string). Comments in
 * parentheses may nest; quoted-strings may hold quoted-pairs.
 */

/** Skips CFWS (white space and nested comments) from i; returns the next index. */
function skipCfws(s: string, i: number): number {
  let depth = 0;
  while (i < s.length) {
    const c = s[i];
    if (depth > 0) {
      if (c === "\\") i += 2;
      else {
        if (c === "(") depth++;
        else if (c === ")") depth--;
        i++;
      }
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\n") i++;
    else if (c === "(") {
      depth = 1;
      i++;
    } else break;
  }
  return i;
}

const TSPECIALS = '()<>@,;:\\"/[]?= \t\r\n';

/** The authserv-id of an Authentication-Results value (lowercased), or undefined when there is none to read. */
export function authservIdOf(value: string): string | undefined {
  let i = skipCfws(value, 0);
  if (i >= value.length) return undefined;
  if (value[i] === '"') {
    let out = "";
    for (i++; i < value.length; i++) {
      const c = value[i] as string;
      if (c === "\\") {
        i++;
        out += value[i] ?? "";
      } else if (c === '"') return out.length > 0 ? out.toLowerCase() : undefined;
      else out += c;
    }
    return undefined; // unterminated
  }
  const start = i;
  while (i < value.length && !TSPECIALS.includes(value[i] as string) && (value.charCodeAt(i) > 0x20 && value.charCodeAt(i) !== 0x7f)) i++;
  return i > start ? value.slice(start, i).toLowerCase() : undefined;
}

/**
 * Removes every Authentication-Results header field whose authserv-id is
 * ours (case-insensitive). Only the header block is touched; the body and
 * the other fields stay byte for byte.
 */
export function stripOwnAuthResults(content: Buffer, authservId: string): Buffer {
  const ours = authservId.toLowerCase();
  let end = content.indexOf("\r\n\r\n");
  end = end < 0 ? content.length : end + 2; // keep the CRLF that ends the last field
  const head = content.subarray(0, end).toString("latin1");
  if (!/^authentication-results[ \t]*:/im.test(head)) return content;
  // Split into fields: a field is a line plus its continuation lines.
  const fields = head.split(/\r\n(?![ \t])/);
  const kept: string[] = [];
  let removed = false;
  for (const f of fields) {
    const m = /^authentication-results[ \t]*:([\s\S]*)$/i.exec(f);
    if (m && authservIdOf(m[1] ?? "") === ours) {
      removed = true;
      continue;
    }
    kept.push(f);
  }
  if (!removed) return content;
  return Buffer.concat([Buffer.from(kept.join("\r\n"), "latin1"), content.subarray(end)]);
}
