/**
 * Zone-file output for the records Wardmail asks an operator to publish
 * (RFC 1035 §5.1 master-file syntax). A TXT record is one or more
 * character-strings of at most 255 bytes each (RFC 1035 §3.3); receivers
 * join them without a separator (RFC 6376 §3.6.2.2, RFC 7208 §3.3), so a
 * long value such as an RSA-2048 DKIM key is split into several strings.
 */

/** Largest character-string in a TXT record, in bytes (RFC 1035 §3.3). */
export const MAX_TXT_STRING = 255;

/**
 * Splits a TXT value into strings of at most `max` bytes, never inside a
 * UTF-8 sequence. Joining the result gives the value back.
 */
export function splitTxt(value: string, max = MAX_TXT_STRING): string[] {
  if (max < 4) throw new RangeError("max must be at least 4 bytes");
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length === 0) return [""];
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + max, bytes.length);
    // Do not cut a multi-byte character: back up to the byte that starts one.
    while (end < bytes.length && end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString("utf8"));
    start = end;
  }
  return out;
}

/** One character-string in master-file syntax: quoted, with `"` and `\` escaped, control bytes as \DDD. */
export function quoteTxtString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, "utf8")) {
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b < 0x20 || b > 0x7e) out += `\\${String(b).padStart(3, "0")}`;
    else out += String.fromCharCode(b);
  }
  return `${out}"`;
}

/** The RDATA of a TXT record for `value`: `"..." "..."`, each string at most 255 bytes. */
export function txtRdata(value: string): string {
  return splitTxt(value).map(quoteTxtString).join(" ");
}

/** An absolute owner name: lowercase, with the trailing dot. */
export function absolute(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith(".") ? n : `${n}.`;
}

/** A zone-file line `name. IN TYPE rdata` (no TTL: the zone's default applies). */
export function zoneLine(name: string, type: string, rdata: string): string {
  return `${absolute(name)}\tIN\t${type}\t${rdata}`;
}

/** A zone-file TXT line with the value split as needed. */
export function txtLine(name: string, value: string): string {
  return zoneLine(name, "TXT", txtRdata(value));
}
