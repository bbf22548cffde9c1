/**
 * Unit tests of the parts of `wardmail send` that need no peer: the SCRAM
 * client against RFC 7677 §3's published exchange and against hostile
 * servers, z-base-32 and WKD URLs against the draft's example, MIME
 * encodings (quoted-printable, encoded-words), mechanism choice, and the
 * keyring's address and validity checks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeWords, quotedPrintable, contentEntity, entityText } from "./compose.ts";
import { ScramClient, MAX_ITERATIONS } from "./scram.ts";
import { chooseMechanism } from "./smtp.ts";
import { wkdUrls, zbase32 } from "./wkd.ts";
import { signedBytes } from "./pgp.ts";
import { sendCommand } from "./command.ts";

test("SCRAM-SHA-256 client: RFC 7677 §3 exchange, byte for byte, and the server signature", async () => {
  const c = new ScramClient("user", "pencil", { kind: "none" }, "rOprNGfwEbeRWgbNEkqO");
  assert.equal(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const final = await c.final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  assert.equal(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  assert.throws(() => c.verify("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), /signature is wrong/);
  assert.throws(() => c.verify("e=other-error"), /server error/);
});

test("SCRAM client: channel binding flags and the c= attribute", async () => {
  const cb = Buffer.alloc(32, 7);
  const plus = new ScramClient("a,b=c", "pw", { kind: "plus", data: cb }, "abc");
  assert.equal(plus.first(), "p=tls-exporter,,n=a=2Cb=3Dc,r=abc");
  const f = await plus.final("r=abcdef,s=c2FsdA==,i=4096");
  assert.equal(f.split(",")[0], "c=" + Buffer.concat([Buffer.from("p=tls-exporter,,"), cb]).toString("base64"));
  assert.equal(new ScramClient("u", "p", { kind: "supported-not-used" }).first().slice(0, 3), "y,,");
});

test("SCRAM client refuses hostile server-first messages", async () => {
  const c = (): ScramClient => new ScramClient("user", "pw", { kind: "none" }, "abc");
  await assert.rejects(c().final("r=xyz123,s=c2FsdA==,i=4096"), /does not extend ours/);
  await assert.rejects(c().final("r=abc,s=c2FsdA==,i=4096"), /does not extend ours/);
  await assert.rejects(c().final(`r=abcd,s=c2FsdA==,i=${MAX_ITERATIONS + 1}`), /iteration count/);
  await assert.rejects(c().final("r=abcd,s=c2FsdA==,i=100"), /iteration count/);
  await assert.rejects(c().final("r=abcd,i=4096"), /malformed/);
  await assert.rejects(c().final("m=ext,r=abcd,s=c2FsdA==,i=4096"), /extension/);
  await assert.rejects(c().final("r=abcd,s=***,i=4096"), /salt/);
  await assert.rejects(c().final("x".repeat(5000)), /too long/);
  assert.throws(() => c().verify("v=AAAA"), /did not prove/);
});

test("mechanism choice: -PLUS only on TLS 1.3, then SCRAM, then PLAIN; LOGIN alone is not used", () => {
  assert.equal(chooseMechanism(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"], true), "SCRAM-SHA-256-PLUS");
  assert.equal(chooseMechanism(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"], false), "SCRAM-SHA-256");
  assert.equal(chooseMechanism(["PLAIN", "LOGIN"], true), "PLAIN");
  assert.equal(chooseMechanism(["LOGIN", "CRAM-MD5"], true), undefined);
});

test("WKD: z-base-32 hash and URLs as in draft-koch-openpgp-webkey-service §3.1", () => {
  const u = wkdUrls("Joe.Doe@Example.ORG");
  assert.equal(u.direct.host, "example.org");
  assert.equal(u.direct.path, "/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe");
  assert.equal(u.advanced.host, "openpgpkey.example.org");
  assert.equal(u.advanced.path, "/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe");
  assert.equal(zbase32(Buffer.from([0xf0])), "6y"); // 11110 000(00)
  assert.equal(zbase32(Buffer.alloc(0)), "");
});

test("quoted-printable: CRLF lines of at most 76, '=' and 8-bit encoded, trailing space, leading '.' and 'From '", () => {
  const qp = quotedPrintable("a=b\nGrüße \n.\nFrom x\n" + "y".repeat(200) + "\n");
  for (const line of qp.split("\r\n")) assert.ok(line.length <= 76, line);
  assert.ok(!/(^|[^\r])\n/.test(qp), "only CRLF");
  assert.match(qp, /^a=3Db\r\nGr=C3=BC=C3=9Fe=20\r\n=2E\r\n=46rom x\r\ny{75}=\r\n/);
  assert.ok(qp.endsWith("y".repeat(50) + "\r\n"));
});

test("encoded-words: ASCII as is, else UTF-8 B words under 76 characters", () => {
  assert.equal(encodeWords("Hello"), "Hello");
  const w = encodeWords("Grüße ".repeat(20));
  for (const part of w.split("\r\n ")) {
    assert.match(part, /^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/);
    assert.ok(part.length <= 75);
  }
  const decoded = w.split("\r\n ").map((p) => Buffer.from(p.slice(10, -2), "base64").toString("utf8")).join("");
  assert.equal(decoded, "Grüße ".repeat(20));
});

test("the signed bytes are the entity without the CRLF the boundary owns", () => {
  const e = contentEntity("hi\n", []);
  assert.equal(signedBytes(e) + "\r\n", entityText(e));
});

test("usage errors exit 2 before anything is read or sent", async () => {
  const io = { out: () => undefined, err: () => undefined };
  for (const args of [[], ["--server", "h:25"], ["--server", "h:99999", "--from", "a@b.c", "--to", "d@e.f", "--subject", "s"], ["--server", "h:25", "--from", "nope", "--to", "d@e.f", "--subject", "s"], ["--server", "h:25", "--from", "a@b.c", "--to", "d@e.f", "--subject", "s", "--sign"], ["--server", "h:25", "--from", "a@b.c", "--to", "d@e.f", "--subject", "s", "--smime"], ["--bogus"]]) {
    assert.equal(await sendCommand(args, io), 2, JSON.stringify(args));
  }
});
