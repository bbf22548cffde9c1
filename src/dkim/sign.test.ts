/**
 * DKIM signing, checked by two independent verifiers: mailauth's dkimVerify
 * (strict) and Debian's dkimpy (python3-dkim, run as a child process with
 * the key records handed to it by a dnsfunc, read back from our zone-file
 * lines). Also: From is over-signed (an added From breaks the signature,
 * where mailauth's own dkimSign output would still verify), refusals
 * (dkimpy's test_nofrom.message), the choice of signing domain, our body
 * hash against mailauth's on edge cases, a property test over random
 * headers and bodies, and the RFC 8463 example message re-signed with its
 * own keys.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { dkimSign, dkimVerify } from "mailauth";
import { conformanceFile } from "../../test/helpers/conformance.ts";
import { DkimSignError, fromDomain, generateDomainKeys, loadSigningKeys, signMessage, signWith, signingDomain, txtLine, type DomainKeySet, type SigningKeys } from "./index.ts";
import { dkimpyVerify, pythonMissing, txtResolver, txtStrings } from "../../test/helpers/dkim.ts";
import { peerSkip } from "../../test/helpers/peers.ts";

const noDkimpy = peerSkip(pythonMissing("dkim, nacl", "python3-dkim"));
const SIGN_TIME = new Date("2026-11-27T12:00:00Z");

let dir: string;
let keys: SigningKeys;
/** name -> TXT value, as read back from the zone-file lines keygen prints. */
let records: Record<string, string>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-dkim-sign-"));
  const g = await generateDomainKeys(dir, "example.com", { selector: "t1" });
  keys = await loadSigningKeys(dir);
  records = Object.fromEntries(g.records.map((r) => [r.name, txtStrings(txtLine(r.name, r.value)).join("")]));
  assert.deepEqual(Object.values(records), g.records.map((r) => r.value));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join("\r\n"), "utf8");

const MESSAGE = crlf([
  "Received: from client.example.com by mx.example.com",
  "From: Joe SixPack <joe@example.com>",
  "To: Suzie Q <suzie@shopping.example.net>,",
  "\tother@example.net",
  "Cc: cc@example.net",
  "Subject:  Is dinner   ready? ",
  "Date: Fri, 27 Nov 2026 12:00:00 +0000",
  "Message-ID: <20261127120000.1@example.com>",
  "Reply-To: joe@example.com",
  "In-Reply-To: <a@example.net>",
  "References: <a@example.net>",
  "MIME-Version: 1.0",
  "Content-Type: text/plain; charset=utf-8",
  "Content-Transfer-Encoding: 8bit",
  "List-Id: Dinner <dinner.example.com>",
  "List-Unsubscribe: <mailto:leave@example.com>",
  "X-Mailer: not signed",
  "",
  "Hi.  ",
  "",
  "We lost the game.\tAre you hungry yet? Ünïcödé.",
  "",
  "",
  "",
]);

/** mailauth's verdicts (strict), in header order. */
async function mailauthResults(msg: Buffer, recs: Readonly<Record<string, string | readonly string[]>> = records): Promise<string[]> {
  const r = await dkimVerify(msg, { resolver: txtResolver(recs), strict: true, curTime: SIGN_TIME });
  return r.results.map((x) => `${x.status.result}${x.status.comment ? ` (${x.status.comment})` : ""}`);
}

/** Tag map of the index-th DKIM-Signature header (unfolded). */
function signatureTags(msg: Buffer, index: number): Record<string, string> {
  const text = msg.toString("latin1");
  const fields = text.slice(0, text.indexOf("\r\n\r\n")).split(/\r\n(?![ \t])/).filter((f) => /^dkim-signature:/i.test(f));
  const f = (fields[index] ?? "").replace(/^[^:]*:/, "").replace(/\r\n/g, "");
  return Object.fromEntries(f.split(";").map((t) => t.trim()).filter(Boolean).map((t) => [t.slice(0, t.indexOf("=")), t.slice(t.indexOf("=") + 1).replace(/\s+/g, "")]));
}

describe("signMessage", () => {
  test("two signatures on top (RSA first), relaxed/relaxed, the listed headers with From over-signed, lines within 78", async () => {
    const signed = await signMessage(MESSAGE, keys, { domain: "example.com", signTime: SIGN_TIME });
    assert.ok(signed.subarray(signed.length - MESSAGE.length).equals(MESSAGE), "the message follows unchanged");
    const head = signed.subarray(0, signed.length - MESSAGE.length).toString("latin1");
    assert.equal(head.match(/^DKIM-Signature:/gm)?.length, 2);
    assert.ok(head.split("\r\n").every((l) => l.length <= 78), head);
    const rsa = signatureTags(signed, 0);
    const ed = signatureTags(signed, 1);
    assert.deepEqual([rsa.a, rsa.s, rsa.d, rsa.c, rsa.v, rsa.t], ["rsa-sha256", "t1-rsa", "example.com", "relaxed/relaxed", "1", String(SIGN_TIME.getTime() / 1000)]);
    assert.deepEqual([ed.a, ed.s, ed.d, ed.c], ["ed25519-sha256", "t1-ed25519", "example.com", "relaxed/relaxed"]);
    const h = "from:to:cc:subject:date:message-id:reply-to:in-reply-to:references:mime-version:content-type:content-transfer-encoding:list-id:list-unsubscribe:from";
    assert.equal(rsa.h, h);
    assert.equal(ed.h, h);
    assert.equal(rsa.bh, ed.bh);
  });

  test("mailauth (strict) verifies both signatures", async () => {
    const signed = await signMessage(MESSAGE, keys, { domain: "example.com", signTime: SIGN_TIME });
    assert.deepEqual(await mailauthResults(signed), ["pass", "pass"]);
  });

  test("dkimpy verifies both signatures", { skip: noDkimpy }, async () => {
    const signed = await signMessage(MESSAGE, keys, { domain: "example.com", signTime: SIGN_TIME });
    assert.deepEqual(await dkimpyVerify(signed, records), [true, true]);
  });

  test("an added From breaks both signatures (over-signing); without it, mailauth's own dkimSign output would still verify", async () => {
    const evil = Buffer.from("From: CEO <ceo@example.com>\r\n");
    const signed = await signMessage(MESSAGE, keys, { domain: "example.com", signTime: SIGN_TIME });
    // On top of the signatures, or just above the original From: both fail.
    const above = Buffer.from(signed.toString("latin1").replace("From: Joe", `${evil.toString("latin1")}From: Joe`), "latin1");
    for (const tampered of [Buffer.concat([evil, signed]), above]) {
      assert.deepEqual((await mailauthResults(tampered)).map((r) => r.split(" ")[0]), ["fail", "fail"]);
      if (!noDkimpy) assert.deepEqual(await dkimpyVerify(tampered, records), [false, false]);
    }
    const set = keys.get("example.com")?.[0] as DomainKeySet;
    const plain = await dkimSign(MESSAGE, {
      signingDomain: "",
      selector: "",
      privateKey: "",
      strict: true,
      signTime: SIGN_TIME,
      signatureData: [{ signingDomain: "example.com", selector: set.selectorRsa, privateKey: set.rsaKey.export({ type: "pkcs8", format: "pem" }) }],
    });
    assert.deepEqual(plain.errors, []);
    const unprotected = Buffer.concat([evil, Buffer.from(plain.signatures), MESSAGE]);
    assert.deepEqual(await mailauthResults(unprotected), ["pass"], "h=from once: the added From is not covered");
  });

  test("a changed body or signed header fails; an unsigned header may be added", async () => {
    const signed = (await signMessage(MESSAGE, keys, { domain: "example.com", signTime: SIGN_TIME })).toString("latin1");
    const body = Buffer.from(signed.replace("hungry", "Hungry"), "latin1");
    const subject = Buffer.from(signed.replace("dinner   ready", "lunch ready"), "latin1");
    const addedHeader = Buffer.from(signed.replace("X-Mailer:", "X-Spam: no\r\nX-Mailer:"), "latin1");
    const refolded = Buffer.from(signed.replace("Subject:  Is dinner   ready? ", "Subject: Is dinner\r\n ready?"), "latin1");
    assert.deepEqual((await mailauthResults(body)).map((r) => r.split(" ")[0]), ["fail", "fail"]);
    assert.deepEqual((await mailauthResults(subject)).map((r) => r.split(" ")[0]), ["fail", "fail"]);
    assert.deepEqual(await mailauthResults(addedHeader), ["pass", "pass"]);
    assert.deepEqual(await mailauthResults(refolded), ["pass", "pass"], "relaxed: whitespace and folding may change");
  });

  test("refuses a message without exactly one From (dkimpy's test_nofrom.message), and a domain without keys", async () => {
    const nofrom = Buffer.from((await readFile(conformanceFile("dkim", "dkimpy", "test_nofrom.message"), "latin1")).replace(/\r?\n/g, "\r\n"), "latin1");
    await assert.rejects(signMessage(nofrom, keys, { domain: "example.com" }), (e: unknown) => e instanceof DkimSignError && /no From header field/.test(e.message));
    const two = Buffer.concat([Buffer.from("From: other@example.com\r\n"), MESSAGE]);
    await assert.rejects(signMessage(two, keys, { domain: "example.com" }), /with 2 From header fields: it needs exactly one/);
    await assert.rejects(signMessage(MESSAGE, keys, { domain: "example.org" }), /no DKIM keys for example\.org/);
    // A From inside the body does not count.
    const bodyFrom = crlf(["Subject: x", "", "From: joe@example.com", ""]);
    await assert.rejects(signMessage(bodyFrom, keys, { domain: "example.com" }), /no From/);
  });

  test("which domain signs: exactly the From domain when we have keys for it", () => {
    const msg = (from: string): Buffer => crlf([`From: ${from}`, "Subject: x", "", "body", ""]);
    assert.equal(signingDomain(msg("Joe <joe@Example.COM>"), keys), "example.com");
    assert.equal(signingDomain(msg('"boss@evil.test" <joe@example.com>'), keys), "example.com");
    assert.equal(signingDomain(msg("joe@example.com (really x@evil.test)"), keys), "example.com");
    assert.equal(signingDomain(msg("joe@example.com, ann@example.com"), keys), "example.com");
    assert.equal(signingDomain(msg("joe@sub.example.com"), keys), undefined, "no parent-domain match");
    assert.equal(signingDomain(msg("joe@com"), keys), undefined);
    assert.equal(signingDomain(msg("joe@example.org"), keys), undefined, "no keys");
    assert.equal(fromDomain(msg("joe@example.com, ann@example.org")), undefined, "two domains");
    assert.equal(fromDomain(msg("Group: joe@example.com;")), "example.com");
    assert.equal(fromDomain(msg("=?utf-8?q?J=C3=B6?= <jö@bücher.example>")), "xn--bcher-kva.example");
    assert.equal(fromDomain(crlf(["Subject: x", "", ""])), undefined);
  });
});

describe("against mailauth's dkimSign", () => {
  const bodies = ["", "\r\n", "\r\n\r\n\r\n", "a  \t b \r\n\r\n", "no final line end", "line\r\n \r\n\t\r\n", " leading\r\nx\r\n\r\ny\r\n", "bare\nline feeds\n\n"];
  test("strict dkimSign signs with our RSA-2048 and Ed25519 keys, and its body hashes equal ours", async () => {
    const set = keys.get("example.com")?.[0] as DomainKeySet;
    for (const body of bodies) {
      const msg = Buffer.from(`From: joe@example.com\r\nSubject: x\r\n\r\n${body}`, "latin1");
      const theirs = await dkimSign(msg, {
        signingDomain: "",
        selector: "",
        privateKey: "",
        strict: true,
        signTime: SIGN_TIME,
        signatureData: [
          { signingDomain: "example.com", selector: set.selectorRsa, privateKey: set.rsaKey.export({ type: "pkcs8", format: "pem" }) },
          { signingDomain: "example.com", selector: set.selectorEd, privateKey: set.edKey.export({ type: "pkcs8", format: "pem" }) },
        ],
      });
      assert.deepEqual(theirs.errors, [], JSON.stringify(body));
      assert.deepEqual(theirs.warnings, []);
      const theirsSigned = Buffer.concat([Buffer.from(theirs.signatures), msg]);
      const ours = signWith(msg, [set], SIGN_TIME);
      for (const i of [0, 1]) assert.equal(signatureTags(ours, i).bh, signatureTags(theirsSigned, i).bh, `body ${JSON.stringify(body)}`);
      assert.deepEqual(await mailauthResults(ours), ["pass", "pass"], `body ${JSON.stringify(body)}`);
    }
  });
});

describe("property: random headers and bodies", () => {
  const wsp = fc.constantFrom(" ", "\t", "  ", " \t ");
  const word = fc.stringMatching(/^[A-Za-z0-9!#.,:<>@-]{1,12}$/);
  const value = fc.array(fc.tuple(word, wsp, fc.boolean()), { minLength: 1, maxLength: 6 }).map((ws) => ws.map(([w, s, fold]) => `${w}${fold ? `\r\n${s}` : s}`).join(""));
  const name = fc.constantFrom("To", "Cc", "Subject", "Date", "X-Other", "Received", "List-Post", "content-type", "SUBJECT", "Message-ID");
  const bodyLine = fc.array(fc.oneof(word, wsp), { maxLength: 6 }).map((p) => p.join(""));
  test("mailauth verifies both signatures of whatever we sign", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(name, wsp, value), { maxLength: 8 }), fc.nat({ max: 8 }), fc.array(bodyLine, { maxLength: 8 }), async (hs, fromAt, lines) => {
        const fields = hs.map(([n, s, v]) => `${n}:${s}${v}`);
        fields.splice(Math.min(fromAt, fields.length), 0, "From: Someone <someone@example.com>");
        const msg = Buffer.from(`${fields.join("\r\n")}\r\n\r\n${lines.join("\r\n")}`, "latin1");
        const signed = await signMessage(msg, keys, { domain: "example.com", signTime: SIGN_TIME });
        assert.deepEqual(await mailauthResults(signed), ["pass", "pass"], msg.toString("latin1"));
      }),
      { numRuns: 150 },
    );
  });
});

describe("RFC 8463 Appendix A", () => {
  const rfc = (...p: string[]): string => conformanceFile("dkim", "rfc8463", ...p);
  test("the example message re-signed with its own keys verifies in mailauth and dkimpy; the body hash is the RFC's", async () => {
    const signedEml = (await readFile(rfc("signed.eml"), "latin1")).replace(/\r?\n/g, "\r\n");
    const unsigned = Buffer.from(signedEml.replace(/^DKIM-Signature:.*\r\n(?:[ \t].*\r\n)*/gim, ""), "latin1");
    assert.match(unsigned.toString("latin1"), /^From: Joe SixPack/);
    const seed = Buffer.from((await readFile(rfc("ed25519-private.seed.b64"), "latin1")).trim(), "base64");
    const edKey = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
    const rsaKey = createPrivateKey(await readFile(rfc("rsa-private.pem")));
    const set: DomainKeySet = {
      domain: "football.example.com",
      selector: "rfc8463",
      selectorRsa: "test",
      rsaKey,
      rsaBits: 1024,
      selectorEd: "brisbane",
      edKey,
      created: new Date(0),
    };
    const ours = signWith(unsigned, [set], new Date(1528637909 * 1000));
    assert.equal(signatureTags(ours, 1).bh, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    assert.equal(signatureTags(ours, 1).h, "from:to:subject:date:message-id:from");
    const dns = JSON.parse(await readFile(rfc("dns.json"), "utf8")) as Record<string, { TXT: string[][] }>;
    const recs = Object.fromEntries(Object.entries(dns).map(([n, rr]) => [n, (rr.TXT[0] ?? []).join("")]));
    const r = await dkimVerify(ours, { resolver: txtResolver(recs), strict: true, curTime: new Date(1528637909 * 1000) });
    assert.deepEqual(r.results.map((x) => [x.status.result, x.selector, x.algo]), [["pass", "test", "rsa-sha256"], ["pass", "brisbane", "ed25519-sha256"]]);
    if (!noDkimpy) assert.deepEqual(await dkimpyVerify(ours, recs), [true, true]);
    // Sanity: a key that is not the published one fails.
    const other = { ...set, edKey: generateKeyPairSync("ed25519").privateKey };
    assert.deepEqual((await mailauthResults(signWith(unsigned, [other], new Date(1528637909 * 1000)), recs)).map((x) => x.split(" ")[0]), ["pass", "fail"]);
  });
});
