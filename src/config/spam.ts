/**
 * The check of [spam] rspamd: "" (off) or the http:// address of rspamd's
 * normal worker, e.g. "http://127.0.0.1:11333". Pure, no I/O.
 *
 * rspamd's workers speak plain HTTP (no TLS), so only http:// is taken; no
 * user name or password (rspamd's normal worker has none and they would end
 * up in logs), no query or fragment; a path other than "/" is refused
 * because Wardmail always asks /checkv2. Normalised to "http://host:port".
 */
import type { Check } from "./checkers.ts";
import { describe } from "./syntax.ts";

export const rspamdUrl: Check = (v, path, ctx) => {
  if (v === "") return "";
  const expected = 'expected "" (off) or the http:// address of rspamd\'s normal worker, e.g. "http://127.0.0.1:11333"';
  if (typeof v !== "string" || /[\x00-\x20\x7f]/.test(v)) {
    ctx.issue(path, `${expected}, got ${describe(v)}`);
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    ctx.issue(path, `${expected}, got ${describe(v)}`);
    return undefined;
  }
  const problem =
    u.protocol !== "http:" ? `scheme ${u.protocol.replace(/:$/, "")} (rspamd's workers speak plain HTTP)`
    : u.username !== "" || u.password !== "" ? "a user name or password in the address"
    : u.search !== "" || u.hash !== "" ? "a query or fragment"
    : u.pathname !== "/" ? `the path ${u.pathname} (Wardmail asks /checkv2 itself)`
    : u.hostname === "" ? "no host"
    : undefined;
  if (problem !== undefined) {
    ctx.issue(path, `${expected}, got ${describe(v)}: ${problem}`);
    return undefined;
  }
  return `http://${u.hostname}:${u.port === "" ? "80" : u.port}`;
};
