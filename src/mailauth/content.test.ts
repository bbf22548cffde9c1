/**
 * verifyContent (the verifier thread's work for one message) hands back the
 * DKIM results (which DMARC also reads) exactly as a JSON copy of them would
 * be (no undefined fields, no hidden properties, nothing a copy would
 * change), and the ARC result's strings, for passing, failing, unsigned,
 * partly signed (l=), keyless and ARC-sealed messages.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { dkimSign, sealMessage } from "mailauth";
import { verifyContent, type ContentTask } from "./content.ts";
import { DkimKeyCache } from "./verify.ts";

function rsa(): { priv: string; p: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), p: publicKey.export({ type: "spki", format: "der" }).toString("base64") };
}
const key = rsa();
const sealer = rsa();
const ZONE: Record<string, string> = {
  "sel._domainkey.sender.test": `v=DKIM1; k=rsa; p=${key.p}`,
  "arc._domainkey.sealer.test": `v=DKIM1; k=rsa; p=${sealer.p}`,
  "_dmarc.sender.test": "v=DMARC1; p=reject",
};
const resolver = (name: string, type: string): Promise<unknown> => {
  const txt = type === "TXT" ? ZONE[name.toLowerCase()] : undefined;
  return txt === undefined ? Promise.reject(Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: "ENOTFOUND" })) : Promise.resolve([[txt]]);
};

const HEAD = "From: Sender <sender@sender.test>\r\nTo: <sink@bench.test>\r\nSubject: s\r\n\r\n";
async function signed(body: string, opts: { selector?: string; maxBodyLength?: number } = {}): Promise<string> {
  const r = await dkimSign(HEAD + body, {
    signatureData: [{ signingDomain: "sender.test", selector: opts.selector ?? "sel", privateKey: key.priv, algorithm: "rsa-sha256", canonicalization: "relaxed/simple", ...(opts.maxBodyLength !== undefined ? { maxBodyLength: opts.maxBodyLength } : {}) }],
  } as never);
  return r.signatures + HEAD + body;
}

const task: ContentTask = { mailFrom: "sender@sender.test", clientIp: "127.0.0.1", helo: "mta.sender.test", authservId: "mx.test", spf: { status: { result: "pass" }, domain: "sender.test" } as never, authors: ["sender@sender.test", "postmaster@other.test"] };

void test("verifyContent's DKIM results are plain data, equal to their own JSON copy, for every kind of message", async () => {
  const body = "line one\r\nline two\r\n";
  const good = await signed(body);
  const sealedPart = await sealMessage(Buffer.from(good), { signingDomain: "sealer.test", selector: "arc", privateKey: sealer.priv, authResults: "i=1; sealer.test; dkim=pass header.d=sender.test; dmarc=pass header.from=sender.test", cv: "none" } as never);
  const cases: Record<string, { message: string | Buffer; dkim: string[]; arc: string }> = {
    pass: { message: good, dkim: ["pass"], arc: "none" },
    tampered: { message: good.replace("line two", "line 2"), dkim: ["fail"], arc: "none" },
    unsigned: { message: HEAD + body, dkim: ["none"], arc: "none" },
    "l= (undersized)": { message: (await signed(body, { maxBodyLength: 10 })) + "appended\r\n", dkim: ["pass"], arc: "none" },
    "no key": { message: await signed(body, { selector: "gone" }), dkim: ["neutral"], arc: "none" },
    "ARC-sealed": { message: Buffer.concat([sealedPart, Buffer.from(good)]), dkim: ["pass"], arc: "pass" },
  };
  for (const [name, c] of Object.entries(cases)) {
    const v = await verifyContent(Buffer.from(c.message), task, resolver, new DkimKeyCache());
    assert.deepStrictEqual(v.dkim, JSON.parse(JSON.stringify(v.dkim)), name);
    assert.equal(Object.getOwnPropertyNames(v.dkim).length, Object.keys(v.dkim).length, `${name}: no hidden properties`);
    assert.deepEqual(
      (v.dkim.results ?? []).map((r) => r.status.result),
      c.dkim,
      name,
    );
    assert.equal(v.arc && v.arc.status.result, c.arc, name);
    assert.equal(v.dmarc.length, 2, name);
    // DMARC passes by the aligned SPF pass whatever DKIM says; the second author has no policy.
    assert.deepEqual(v.dmarc.map((d) => d && d.status.result), ["pass", "none"], name);
  }
  const l = await verifyContent(Buffer.from((await signed(body, { maxBodyLength: 10 })) + "appended\r\n"), task, resolver, new DkimKeyCache());
  assert.equal(typeof l.dkim.results?.[0]?.status.underSized, "number");
  const sealed = await verifyContent(Buffer.concat([sealedPart, Buffer.from(good)]), task, resolver, new DkimKeyCache());
  const seal = sealed.arc && sealed.arc.signature;
  assert.equal(seal && seal.signingDomain, "sealer.test");
});
