/**
 * The SMTP framing of SASL (RFC 4954 §4): the AUTH command's arguments and
 * the client's response lines. Only the framing: the mechanisms themselves
 * live in src/auth and run in the host. Responses are strict base64 (RFC
 * 4648, padded); "*" cancels; "=" as initial response means an empty one.
 */
import type { Reply } from "./reply.ts";
import { R } from "./replies.ts";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** "AUTH mechanism [initial-response]": the mechanism (uppercase) if offered, and the decoded initial response. */
export function parseAuthCommand(arg: string, offered: readonly string[]): { mechanism: string; response: Buffer | undefined } | Reply {
  const m = /^([A-Za-z0-9_-]{1,20})(?: ([A-Za-z0-9+/]+=*|=))?$/.exec(arg);
  if (!m) return R.authSyntax;
  const mechanism = (m[1] ?? "").toUpperCase();
  if (!offered.includes(mechanism)) return R.authUnknownMech;
  const initial = m[2];
  if (initial === undefined) return { mechanism, response: undefined };
  if (initial === "=") return { mechanism, response: Buffer.alloc(0) };
  if (!BASE64.test(initial)) return R.authBadBase64;
  return { mechanism, response: Buffer.from(initial, "base64") };
}

/** One response line of the exchange: its decoded bytes, or the reply ending the exchange. */
export function decodeSaslLine(raw: Buffer): Buffer | Reply {
  const line = raw.toString("latin1");
  if (line === "*") return R.authCancelled;
  if (!BASE64.test(line)) return R.authBadBase64;
  return Buffer.from(line, "base64");
}
