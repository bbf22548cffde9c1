/**
 * The ACME pieces that need no ACME server: the CSR (checked by openssl),
 * the TLSA 3 1 1 value (checked against openssl's SPKI digest), and the
 * HTTP-01 responder's answers. The orders themselves: test/acme.test.ts (pebble).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import pino from "pino";
import { ChallengeServer, tlsa311 } from "./index.ts";
import { createCsr, newCertificateKey } from "./csr.ts";

const openssl = (args: string[], input: Buffer | string): string => execFileSync("openssl", args, { input, encoding: "utf8" });

test("the CSR is a valid PKCS#10 request signed by the key, naming every name as a subjectAltName", async () => {
  const key = newCertificateKey();
  const csr = await createCsr(["mx.example.org", "mta-sts.example.org"], key);
  const text = openssl(["req", "-verify", "-noout", "-text"], csr);
  assert.match(text, /Subject: CN ?= ?mx\.example\.org/);
  assert.match(text, /DNS:mx\.example\.org, DNS:mta-sts\.example\.org/);
  const modulus = (pem: string, kind: "req" | "rsa"): string => openssl([kind, "-noout", "-modulus"], pem);
  assert.equal(modulus(csr.toString(), "req"), modulus(key.toString(), "rsa"));
  await assert.rejects(createCsr([], key));
});

test("tlsa311 is the SHA-256 of the key's SubjectPublicKeyInfo (what `3 1 1` publishes)", () => {
  const key = newCertificateKey();
  const spki = execFileSync("openssl", ["pkey", "-pubout", "-outform", "DER"], { input: key });
  const digest = execFileSync("openssl", ["dgst", "-sha256", "-hex"], { input: spki, encoding: "utf8" }).trim().split(" ").at(-1);
  assert.equal(tlsa311(key), digest);
});

test("the HTTP-01 responder answers only a pending token under /.well-known/acme-challenge/", async () => {
  const c = new ChallengeServer(pino({ level: "silent" }));
  const [bound] = await c.listen([{ host: "127.0.0.1", port: 0 }]);
  assert.ok(bound);
  const get = async (path: string, method = "GET"): Promise<{ status: number; body: string }> => {
    const r = await fetch(`http://127.0.0.1:${bound.port}${path}`, { method, signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: await r.text() };
  };
  try {
    c.set("tok_en-1", "tok_en-1.thumbprint");
    assert.deepEqual(await get("/.well-known/acme-challenge/tok_en-1"), { status: 200, body: "tok_en-1.thumbprint" });
    assert.equal((await get("/.well-known/acme-challenge/tok_en-1", "HEAD")).status, 200);
    assert.equal((await get("/.well-known/acme-challenge/other")).status, 404);
    assert.equal((await get("/.well-known/acme-challenge/tok%20en")).status, 404);
    assert.equal((await get("/")).status, 404);
    assert.equal((await get("/.well-known/acme-challenge/tok_en-1", "POST")).status, 404);
    c.delete("tok_en-1");
    assert.equal((await get("/.well-known/acme-challenge/tok_en-1")).status, 404);
  } finally {
    await c.close();
  }
});
