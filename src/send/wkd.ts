/**
 * OpenPGP Web Key Directory lookups (draft-koch-openpgp-webkey-service §3.1):
 * the advanced method https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL
 * when openpgpkey.DOMAIN has an address, else the direct method
 * https://DOMAIN/.well-known/openpgpkey/hu/HASH?l=LOCAL; HASH is the
 * z-base-32 of the SHA-1 of the lowercased local part.
 *
 * The server certificate is always verified (system CAs or --ca-file); no
 * redirects are followed; the answer is bounded in size (MAX_WKD_BYTES) and
 * time; only keys that carry the address as a user id are taken, and then
 * only when valid (not expired or revoked) and able to encrypt.
 */
import { createHash } from "node:crypto";
import https from "node:https";
import tls from "node:tls";
import type * as openpgp from "openpgp";
import { pgpHasAddress, pgpKeyFor, readPgpKeys, type Found } from "./keyring.ts";

export const MAX_WKD_BYTES = 256 * 1024;

const ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769";

/** z-base-32 (the WKD variant: 5 bits a character, most significant first). */
export function zbase32(data: Buffer): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of data) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ZBASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ZBASE32[(value << (5 - bits)) & 31];
  return out;
}

export interface WkdUrl {
  readonly host: string;
  readonly path: string;
}

/** The advanced and direct URLs for an address. */
export function wkdUrls(address: string): { advanced: WkdUrl; direct: WkdUrl } {
  const at = address.lastIndexOf("@");
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  const hash = zbase32(createHash("sha1").update(local.toLowerCase(), "utf8").digest());
  const l = `?l=${encodeURIComponent(local)}`;
  return {
    advanced: { host: `openpgpkey.${domain}`, path: `/.well-known/openpgpkey/${domain}/hu/${hash}${l}` },
    direct: { host: domain, path: `/.well-known/openpgpkey/hu/${hash}${l}` },
  };
}

export interface WkdOptions {
  /** An address for a host name, or undefined when the name has none. */
  readonly resolve: (host: string) => Promise<string | undefined>;
  /** HTTPS port (443; tests use a high port). */
  readonly port: number;
  readonly ca?: Buffer;
  readonly timeoutMs: number;
}

type Fetched = { readonly status: "ok"; readonly body: Buffer } | { readonly status: "none"; readonly why: string };

function fetchKey(url: WkdUrl, address: string, o: WkdOptions): Promise<Fetched> {
  return new Promise((resolve) => {
    const req = https.get({
      host: address,
      port: o.port,
      path: url.path,
      servername: url.host,
      headers: { host: o.port === 443 ? url.host : `${url.host}:${o.port}`, accept: "application/octet-stream" },
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(url.host, cert),
      timeout: o.timeoutMs,
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${o.timeoutMs / 1000} s`));
    }, o.timeoutMs);
    const finish = (f: Fetched): void => {
      clearTimeout(timer);
      resolve(f);
    };
    req.on("error", (err) => finish({ status: "none", why: `https://${url.host}: ${err.message}` }));
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish({ status: "none", why: `https://${url.host}${url.path.split("?")[0] ?? ""}: HTTP ${res.statusCode ?? "?"}` });
        req.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_WKD_BYTES) {
          req.destroy(new Error(`answer larger than ${MAX_WKD_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on("end", () => finish({ status: "ok", body: Buffer.concat(chunks) }));
      res.on("error", (err) => finish({ status: "none", why: `https://${url.host}: ${err.message}` }));
    });
  });
}

/** The recipient's key from its Web Key Directory, or why there is none. */
export async function wkdLookup(address: string, o: WkdOptions): Promise<Found<openpgp.PublicKey>> {
  const { advanced, direct } = wkdUrls(address);
  let url = advanced;
  let ip = await o.resolve(advanced.host);
  if (ip === undefined) {
    url = direct;
    ip = await o.resolve(direct.host);
    if (ip === undefined) return { ok: false, reason: `WKD: neither ${advanced.host} nor ${direct.host} has an address` };
  }
  const got = await fetchKey(url, ip, o);
  if (got.status === "none") return { ok: false, reason: `WKD: ${got.why}` };
  let keys: openpgp.PublicKey[];
  try {
    keys = await readPgpKeys(got.body);
  } catch {
    return { ok: false, reason: `WKD: https://${url.host} answered something that is not an OpenPGP key` };
  }
  const mine = keys.filter((k) => pgpHasAddress(k, address));
  if (mine.length === 0) return { ok: false, reason: `WKD: the key from https://${url.host} does not carry ${address}` };
  const found = await pgpKeyFor(mine, address);
  return found.ok ? found : { ok: false, reason: `WKD: ${found.reason}` };
}
