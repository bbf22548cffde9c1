/**
 * verifyDkim against mailauth's own dkimVerify(): the same results for
 * generated messages (CRLF, bare LF and mixed line ends, folded and empty
 * headers, no body, no empty line, a leading empty line, tampered bodies and
 * headers, RSA and Ed25519, relaxed and simple, l=, a chunk boundary inside
 * the header section); key records reused between messages only while their
 * text stays the same (rotation and revocation seen at once, one DNS
 * question per key record per message, failed parses not kept, the bound);
 * the ARC data handed on with the same key lookup; and the mailauth
 * internals this depends on, so that an upgrade that moves them fails here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { arc, dkimSign, dkimVerify, sealMessage } from "mailauth";
import { DkimVerifier } from "mailauth/lib/dkim/dkim-verifier.js";
import { getPublicKey, toALabel, writeToStream } from "mailauth/lib/tools.js";
import { DkimKeyCache, headerEnd, verifyDkim } from "./verify.ts";

function rsa(bits: number): { priv: string; p: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  return { priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), p: publicKey.export({ type: "spki", format: "der" }).toString("base64") };
}
const rsaA = rsa(2048);
const rsaB = rsa(2048);
const ed = (() => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), p: publicKey.export({ type: "spki", format: "der" }).subarray(-32).toString("base64") };
})();

type Zone = Record<string, string>;
/** A TXT-only resolver over `zone` that counts the questions it gets. */
function zoneResolver(zone: Zone): { resolve: (name: string, type: string) => Promise<unknown>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: (name: string, type: string) => {
      asked.push(`${type} ${name}`);
      const txt = zone[name.toLowerCase()];
      if (type !== "TXT" || txt === undefined) return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: "ENOTFOUND" }));
      return Promise.resolve([[txt]]);
    },
  };
}

const ZONE: Zone = {
  "a._domainkey.example.test": `v=DKIM1; k=rsa; p=${rsaA.p}`,
  "b._domainkey.example.test": `v=DKIM1; k=rsa; p=${rsaB.p}`,
  "ed._domainkey.example.test": `v=DKIM1; k=ed25519; p=${ed.p}`,
  "arc._domainkey.sealer.test": `v=DKIM1; k=rsa; p=${rsaB.p}`,
};

async function sign(message: string, selector: "a" | "b" | "ed", canonicalization: string, maxBodyLength?: number): Promise<string> {
  const key = selector === "ed" ? ed : selector === "a" ? rsaA : rsaB;
  const r = await dkimSign(message, {
    signatureData: [
      {
        signingDomain: "example.test",
        selector,
        privateKey: key.priv,
        algorithm: selector === "ed" ? "ed25519-sha256" : "rsa-sha256",
        canonicalization,
        ...(maxBodyLength !== undefined ? { maxBodyLength } : {}),
      },
    ],
  } as never);
  return r.signatures + message;
}

/** Both results, with the hidden properties that arc() and DMARC read, as comparable JSON. */
function shape(r: Awaited<ReturnType<typeof dkimVerify>>): unknown {
  const hidden = r as unknown as { headers?: unknown; arc?: unknown };
  return JSON.parse(JSON.stringify({ ...r, headers: hidden.headers, arc: hidden.arc }));
}

async function compare(message: Buffer, zone: Zone = ZONE, keys = new DkimKeyCache()): Promise<unknown> {
  const curTime = new Date("2026-11-27T12:00:00Z");
  const theirs = await dkimVerify(message, { resolver: zoneResolver(zone).resolve as never, strict: true, curTime } as never);
  const ours = await verifyDkim(message, { resolver: zoneResolver(zone).resolve, strict: true, curTime } as never, keys);
  assert.deepEqual(shape(ours), shape(theirs));
  return shape(ours);
}

const headerName = fc.constantFrom("Subject", "X-Note", "Reply-To", "Comments", "To");
const text = fc.string({ unit: fc.constantFrom("a", "b", " ", "\t", "=", ":", "é", "0"), maxLength: 40 });
const eol = fc.constantFrom("\r\n", "\n", "\r\n", "\r");

test("verifyDkim: the same results as mailauth's dkimVerify for generated messages", async () => {
  const keys = new DkimKeyCache();
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        headers: fc.array(fc.tuple(headerName, text, fc.boolean()), { maxLength: 5 }),
        body: fc.array(text, { maxLength: 12 }),
        eols: fc.array(eol, { minLength: 30, maxLength: 30 }),
        selector: fc.constantFrom("a" as const, "b" as const, "ed" as const),
        canon: fc.constantFrom("relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"),
        limit: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }),
        shape: fc.constantFrom("normal", "no-body", "no-empty-line", "leading-empty-line"),
        tamper: fc.constantFrom("none", "body", "header", "signature-line-ends"),
      }),
      async (c) => {
        let k = 0;
        const nl = (): string => c.eols[k++ % c.eols.length] ?? "\r\n";
        const head = [`From: Someone <someone@example.test>`, ...c.headers.map(([n, v, folded]) => (folded ? `${n}: ${v}\r\n\t${v}` : `${n}: ${v}`))].join("\r\n") + "\r\n";
        const body = c.body.map((l) => `${l}\r\n`).join("");
        const base = c.shape === "no-body" ? `${head}\r\n` : c.shape === "no-empty-line" ? head : c.shape === "leading-empty-line" ? `\r\n${head}\r\n${body}` : `${head}\r\n${body}`;
        let signed = await sign(base, c.selector, c.canon, c.limit);
        // The wire form: some CRLFs become bare LF or CR (mailauth turns bare LF into CRLF).
        if (c.tamper === "signature-line-ends" || c.eols.some((e) => e !== "\r\n")) signed = signed.replace(/\r\n/g, () => nl());
        if (c.tamper === "body") signed = `${signed}tampered\r\n`;
        if (c.tamper === "header") signed = signed.replace("From: Someone", "From: Sameone");
        await compare(Buffer.from(signed, "utf8"), ZONE, keys);
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(keys.size <= 3, `at most one parsed record per key, got ${keys.size}`);
});

test("verifyDkim: a header section that ends in a later chunk (over 64 KiB of header) and a large body", async () => {
  const long = `X-Long: ${"x".repeat(70 * 1024)}\r\n`;
  const signed = await sign(`From: a@example.test\r\n${long}Subject: big\r\n\r\n${"line\r\n".repeat(30000)}`, "a", "relaxed/relaxed");
  const r = (await compare(Buffer.from(signed))) as { results: { status: { result: string } }[] };
  assert.equal(r.results[0]?.status.result, "pass");
});

test("verifyDkim: a CRLF and a bare LF split by the 64 KiB chunk boundary", async () => {
  const signed = await sign(`From: a@example.test\r\nSubject: s\r\n\r\n${"0123456789abcdef\r\n".repeat(4000)}`, "a", "simple/simple");
  // An unsigned header on top moves the body so that byte 65535, the last of
  // the first chunk, is the CR of a CRLF (the LF starts the next chunk).
  const target = signed.indexOf("\r\n", 65536 - 2000);
  const full = Buffer.from(`X-Pad: ${"p".repeat(65535 - target - "X-Pad: \r\n".length)}\r\n${signed}`);
  assert.deepEqual([full[65535], full[65536]], [0x0d, 0x0a]);
  let r = (await compare(full)) as { results: { status: { result: string } }[] };
  assert.equal(r.results[0]?.status.result, "pass");
  // The same LF, now bare (the byte before it, in the first chunk, is not a CR).
  full[65535] = 0x66;
  r = (await compare(full)) as { results: { status: { result: string } }[] };
  assert.equal(r.results[0]?.status.result, "fail");
});

test("headerEnd: the offset after the empty line, or -1", () => {
  assert.equal(headerEnd(Buffer.from("A: b\r\n\r\nbody")), 8);
  assert.equal(headerEnd(Buffer.from("A: b\n\nbody")), 6);
  assert.equal(headerEnd(Buffer.from("A: b\n\r\nbody")), 7);
  assert.equal(headerEnd(Buffer.from("\r\nbody")), 2);
  assert.equal(headerEnd(Buffer.from("\nbody")), 1);
  assert.equal(headerEnd(Buffer.from("A: b\r\nC: d\r\n")), -1);
  assert.equal(headerEnd(Buffer.from("A: b\r\r\n")), -1);
  // The earlier of the two forms wins.
  assert.equal(headerEnd(Buffer.from("A: b\n\r\nC\n\n")), 7);
  assert.equal(headerEnd(Buffer.from("A: b\n\nC\n\r\n")), 6);
});

test("DkimKeyCache: one question per key record per message; the parse reused while the record text is the same", async () => {
  const keys = new DkimKeyCache();
  const message = Buffer.from(await sign("From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n", "a", "relaxed/relaxed"));
  // Two signatures with the same key record: one question.
  const twice = Buffer.from(await sign(message.toString(), "a", "simple/simple"));
  const z = zoneResolver(ZONE);
  const r1 = await verifyDkim(twice, { resolver: z.resolve, strict: true } as never, keys);
  assert.deepEqual(r1.results.map((r) => r.status.result), ["pass", "pass"]);
  assert.deepEqual(z.asked, ["TXT a._domainkey.example.test"]);
  assert.equal(keys.size, 1);
  // Next message: asked again (the resolver's TTL decides), parsed once.
  await verifyDkim(message, { resolver: z.resolve, strict: true } as never, keys);
  assert.equal(z.asked.length, 2);
  assert.equal(keys.size, 1);
});

test("DkimKeyCache: a rotated or revoked key counts at once", async () => {
  const keys = new DkimKeyCache();
  const zone: Zone = { ...ZONE };
  const signedA = Buffer.from(await sign("From: a@example.test\r\n\r\nbody\r\n", "a", "relaxed/relaxed"));
  const result = async (): Promise<string | undefined> => (await verifyDkim(signedA, { resolver: zoneResolver(zone).resolve, strict: true } as never, keys)).results[0]?.status.result;
  assert.equal(await result(), "pass");
  zone["a._domainkey.example.test"] = `v=DKIM1; k=rsa; p=${rsaB.p}`;
  assert.equal(await result(), "fail");
  zone["a._domainkey.example.test"] = "v=DKIM1; k=rsa; p=";
  assert.notEqual(await result(), "pass");
  zone["a._domainkey.example.test"] = `v=DKIM1; k=rsa; p=${rsaA.p}`;
  assert.equal(await result(), "pass");
  // A record that does not parse is not kept.
  assert.equal(keys.size, 2);
});

test("DkimKeyCache: bounded, least recently used out", async () => {
  const keys = new DkimKeyCache(2);
  const zone: Zone = {};
  const z = zoneResolver(zone);
  const lookup = keys.forMessage(z.resolve);
  for (const [i, p] of [rsaA.p, rsaB.p, rsaA.p].entries()) {
    zone[`s${i}._domainkey.example.test`] = `v=DKIM1; k=rsa; t=s; p=${p}`;
    await lookup.get("DKIM", `s${i}._domainkey.example.test`, 1024, { strict: true, hashAlgo: "sha256" });
  }
  // s0 and s2 have the same text: one entry; s1 the other.
  assert.equal(keys.size, 2);
  zone["s3._domainkey.example.test"] = `v=DKIM1; k=ed25519; p=${ed.p}`;
  await lookup.get("DKIM", "s3._domainkey.example.test", 1024, { strict: true, hashAlgo: "sha256" });
  assert.equal(keys.size, 2);
  // An oversized answer (a sender's TXT padding) is parsed but not kept.
  zone["big._domainkey.example.test"] = `v=DKIM1; k=rsa; n=${"x".repeat(9000)}; p=${rsaA.p}`;
  const roomy = new DkimKeyCache(10);
  const big = (await roomy.forMessage(z.resolve).get("DKIM", "big._domainkey.example.test", 1024, { strict: true, hashAlgo: "sha256" })) as { keyType: string };
  assert.equal(big.keyType, "rsa");
  assert.equal(roomy.size, 0);
  // Each caller gets its own arrays.
  const a = (await lookup.get("DKIM", "s3._domainkey.example.test", 1024, { strict: true, hashAlgo: "sha256" })) as { flags: string[] };
  a.flags.push("changed");
  const b = (await keys.forMessage(z.resolve).get("DKIM", "s3._domainkey.example.test", 1024, { strict: true, hashAlgo: "sha256" })) as { flags: string[] };
  assert.deepEqual(b.flags, []);
});

test("DkimKeyCache: the lookup options are part of both keys; least recently used out first", async () => {
  const keys = new DkimKeyCache(2);
  const weak = rsa(768);
  const zone: Zone = {
    "h._domainkey.example.test": `v=DKIM1; k=rsa; h=sha256; p=${rsaA.p}`,
    "w._domainkey.example.test": `v=DKIM1; k=rsa; p=${weak.p}`,
  };
  const z = zoneResolver(zone);
  const lookup = keys.forMessage(z.resolve);
  const get = (name: string, minBitLength: number, hashAlgo: string, on = lookup): Promise<unknown> => on.get("DKIM", `${name}._domainkey.example.test`, minBitLength, { strict: true, hashAlgo });
  // h=sha256: fine for sha256, refused for sha1, in the same message and in the next one.
  await get("h", 1024, "sha256");
  await assert.rejects(get("h", 1024, "sha1"), /does not allow sha1/);
  await assert.rejects(get("h", 1024, "sha1", keys.forMessage(z.resolve)), /does not allow sha1/);
  // A 768-bit key: fine with a 512-bit minimum, too short with 1024.
  await get("w", 512, "sha256");
  await assert.rejects(get("w", 1024, "sha256"), /too short/);
  await assert.rejects(get("w", 1024, "sha256", keys.forMessage(z.resolve)), /too short/);

  // Reuse is visible as the same KeyObject; a new parse gives a new one.
  const fresh = new DkimKeyCache(2);
  const pick = async (name: string): Promise<unknown> => ((await fresh.forMessage(z.resolve).get("DKIM", `${name}._domainkey.example.test`, 512, { strict: true, hashAlgo: "sha256" })) as { publicKey: unknown }).publicKey;
  zone["c._domainkey.example.test"] = `v=DKIM1; k=ed25519; p=${ed.p}`;
  const a1 = await pick("h");
  const w1 = await pick("w");
  await new Promise((r) => setImmediate(r));
  assert.equal(await pick("h"), a1, "kept");
  await pick("c"); // evicts the least recently used: w, not h
  await new Promise((r) => setImmediate(r));
  assert.equal(await pick("h"), a1, "h was used more recently than w");
  assert.notEqual(await pick("w"), w1, "w was evicted and parsed again");
});

test("DkimKeyCache: a record that does not parse gives every message its own error", async () => {
  const keys = new DkimKeyCache();
  const zone: Zone = { "r1._domainkey.example.test": "v=DKIM1; k=rsa; p=", "r2._domainkey.example.test": "v=DKIM1; k=rsa; p=" };
  const z = zoneResolver(zone);
  const errors = await Promise.all(["r1", "r2"].map((n) => keys.forMessage(z.resolve).get("DKIM", `${n}._domainkey.example.test`, 1024, { strict: true, hashAlgo: "sha256" }).catch((e: unknown) => e)));
  assert.ok(errors[0] instanceof Error && errors[1] instanceof Error);
  assert.notEqual(errors[0], errors[1]);
  assert.equal(keys.size, 0);
});

test("verifyDkim: the ARC data goes on to arc() with the same result as mailauth's", async () => {
  const message = await sign("From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n", "a", "relaxed/relaxed");
  const sealed = await sealMessage(Buffer.from(message), {
    signingDomain: "sealer.test",
    selector: "arc",
    privateKey: rsaB.priv,
    authResults: "i=1; sealer.test; dkim=pass header.d=example.test",
    cv: "none",
  } as never);
  const full = Buffer.concat([sealed, Buffer.from(message)]);
  const z = zoneResolver(ZONE);
  const ours = await verifyDkim(full, { resolver: z.resolve, strict: true } as never, new DkimKeyCache());
  const theirs = await dkimVerify(full, { resolver: z.resolve as never, strict: true });
  const a = await arc((ours as unknown as { arc: never }).arc, { resolver: z.resolve as never, strict: true } as never);
  const b = await arc((theirs as unknown as { arc: never }).arc, { resolver: z.resolve as never, strict: true } as never);
  assert.equal(a.status.result, "pass");
  assert.deepEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));
});

test("verifyDkim: the key step comes before the body hash (RFC 6376 §6.1.2 before §6.1.3)", async () => {
  const signed = await sign("From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n", "ed", "relaxed/relaxed");
  const tampered = Buffer.from(`${signed}tampered\r\n`);
  const status = async (zone: Zone): Promise<{ ours: unknown; theirs: unknown; expecting: unknown }> => {
    const ours = await verifyDkim(tampered, { resolver: zoneResolver(zone).resolve, strict: true } as never, new DkimKeyCache());
    const theirs = await dkimVerify(tampered, { resolver: zoneResolver(zone).resolve as never, strict: true });
    const o = ours.results[0] as unknown as { status: { result: string; comment?: string }; bodyHashExpecting?: unknown };
    const t = theirs.results[0] as unknown as { status: { result: string; comment?: string }; bodyHashExpecting?: unknown };
    assert.equal(t.status.comment, "body hash did not verify", "mailauth compares the body hash first");
    assert.equal(o.bodyHashExpecting, t.bodyHashExpecting, "bh= as the signature has it");
    return { ours: { result: o.status.result, comment: o.status.comment }, theirs: t.status.result, expecting: o.bodyHashExpecting };
  };
  // A usable key: the body hash failure stands.
  assert.deepEqual((await status(ZONE)).ours, { result: "fail", comment: "body hash did not verify" });
  // No key record, a key of the wrong length, a key of another type, a DNS error: the key step's result.
  const without = { ...ZONE };
  delete without["ed._domainkey.example.test"];
  assert.deepEqual((await status(without)).ours, { result: "neutral", comment: "no key" });
  const short = { ...ZONE, "ed._domainkey.example.test": `v=DKIM1; k=ed25519; p=${Buffer.alloc(31, 1).toString("base64")}` };
  assert.equal(((await status(short)).ours as { result: string }).result, "neutral");
  const rsaKey = { ...ZONE, "ed._domainkey.example.test": `v=DKIM1; k=rsa; p=${rsaA.p}` };
  assert.deepEqual((await status(rsaKey)).ours, { result: "neutral", comment: "inappropriate key algorithm" });
  const failing = (name: string, type: string): Promise<unknown> =>
    name.startsWith("ed._domainkey") ? Promise.reject(Object.assign(new Error("timeout"), { code: "ETIMEOUT" })) : zoneResolver(ZONE).resolve(name, type);
  const ours = await verifyDkim(tampered, { resolver: failing, strict: true } as never, new DkimKeyCache());
  assert.equal((ours.results[0] as unknown as { status: { result: string } }).status.result, "temperror");
});

test("mailauth internals verify.ts builds on are still there (pinned mailauth 7.1.0)", () => {
  const v = new DkimVerifier({ resolver: () => Promise.resolve([]) });
  assert.equal(typeof v.keyCache.get, "function");
  assert.equal((v.arc as { keyCache?: unknown }).keyCache, v.keyCache);
  assert.equal(v.state, "header");
  assert.equal(v.headerBytes, 0);
  const generatorFunction: unknown = Object.getPrototypeOf(function* () {});
  assert.equal(Object.getPrototypeOf(Object.getOwnPropertyDescriptor(Object.getPrototypeOf(DkimVerifier.prototype), "ensureLinebreaks")?.value), generatorFunction);
  assert.ok(v.bodyHashes instanceof Map);
  for (const m of ["processChunk", "emitHeaders", "nextChunk", "verifySignature"] as const) assert.equal(typeof DkimVerifier.prototype[m], "function", m);
  assert.equal(typeof getPublicKey, "function");
  assert.equal(typeof writeToStream, "function");
  assert.equal(toALabel("exämple.test"), "xn--exmple-cua.test");
});
