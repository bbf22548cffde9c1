/**
 * registrableDomain and relaxedAlignment (psl.ts) against mailauth's own
 * tools.getAlignment(): the same answers, except for a name with an empty
 * first label, which has no Organizational Domain; and verifyDkim reporting
 * that guess for a From: domain with a leading dot.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { dkimSign, dkimVerify } from "mailauth";
import { getAlignment } from "mailauth/lib/tools.js";
import { registrableDomain, relaxedAlignment } from "./psl.ts";
import { DkimKeyCache, verifyDkim } from "./verify.ts";

/** mailauth's relaxed answer for one signing domain, in relaxedAlignment's form. */
function theirs(from: string, d: string): string | false {
  const entry = getAlignment(from, [d], false);
  return entry === false ? false : entry.domain;
}

test("registrableDomain: tldts's answer, but none for an empty label", () => {
  assert.equal(registrableDomain("a.b.example.com"), "example.com");
  assert.equal(registrableDomain("WwW.example.COM"), "example.com");
  assert.equal(registrableDomain("example.com."), "example.com", "the root's trailing dot is allowed");
  assert.equal(registrableDomain("a.example.co.uk"), "example.co.uk");
  assert.equal(registrableDomain("com"), null);
  assert.equal(registrableDomain(null), null);
  assert.equal(registrableDomain(""), null);
  assert.equal(registrableDomain(".example.com"), null);
  assert.equal(registrableDomain("a..example.com"), null);
  assert.equal(registrableDomain("example.com.."), null);
});

test("relaxedAlignment: mailauth's getAlignment, except for a leading dot", () => {
  const pairs: [string, string][] = [
    ["example.com", "mail.example.com"],
    ["a.example.com", "b.example.com"],
    ["example.com", "example.org"],
    ["EXAMPLE.com.", "example.COM"],
    ["example.co.uk", "other.co.uk"],
    ["example", "example"],
    ["", "example.com"],
  ];
  for (const [from, d] of pairs) assert.equal(relaxedAlignment(from, d), theirs(from, d), `${from} / ${d}`);
  assert.equal(theirs(".example.com", "example.com"), "example.com", "mailauth aligns the malformed name");
  assert.equal(relaxedAlignment(".example.com", "example.com"), false);
  assert.equal(relaxedAlignment("example.com", ".example.com"), false);
});

test("verifyDkim: a From: domain with a leading dot is not guessed aligned with d=", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const p = publicKey.export({ type: "spki", format: "der" }).subarray(-32).toString("base64");
  const resolver = (name: string): Promise<unknown> =>
    name === "ed._domainkey.example.com" ? Promise.resolve([[`v=DKIM1; k=ed25519; p=${p}`]]) : Promise.reject(Object.assign(new Error("ENOTFOUND"), { code: "ENOTFOUND" }));
  const verify = async (from: string): Promise<{ ours: unknown; theirs: unknown }> => {
    const message = `From: someone@${from}\r\nSubject: s\r\n\r\nbody\r\n`;
    const signed = await dkimSign(message, {
      signatureData: [{ signingDomain: "example.com", selector: "ed", privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), algorithm: "ed25519-sha256" }],
    } as never);
    const raw = Buffer.from(signed.signatures + message);
    const ours = await verifyDkim(raw, { resolver, strict: true } as never, new DkimKeyCache());
    const theirs = await dkimVerify(raw, { resolver: resolver as never, strict: true });
    const status = (r: { results: unknown[] }): { result: string; aligned?: unknown } => (r.results[0] as { status: { result: string; aligned?: unknown } }).status;
    assert.equal(status(ours).result, "pass");
    return { ours: status(ours).aligned, theirs: status(theirs).aligned };
  };
  assert.deepEqual(await verify("mail.example.com"), { ours: "example.com", theirs: "example.com" });
  assert.deepEqual(await verify(".example.com"), { ours: false, theirs: "example.com" });
});

test("src/message's registrableDomain uses mailauth's tldts options", async () => {
  const { TLDTS_OPTS } = (await import("mailauth/lib/tools.js")) as unknown as { TLDTS_OPTS: object };
  const { TLDTS_OPTIONS } = await import("../message/index.ts");
  assert.deepEqual(TLDTS_OPTIONS, TLDTS_OPTS);
});
