import { test } from "node:test";
import assert from "node:assert/strict";
import { generateCertificate } from "../tls/index.ts";
import { MAX_TLS_CONTEXTS, sharedTlsContext, sharedTlsContextCount } from "./tls-context.ts";

test("one client context per CA and version set, whatever the per-connection options", async () => {
  const a = await generateCertificate(["a.example.test"]);
  const b = await generateCertificate(["b.example.test"]);
  const plain = sharedTlsContext({ minVersion: "TLSv1.2", rejectUnauthorized: false });
  assert.ok(plain);
  // SNI, the name check and rejectUnauthorized are per connection: same context.
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", rejectUnauthorized: true, servername: "mx.example.test", checkServerIdentity: () => undefined }), plain);
  const withA = sharedTlsContext({ minVersion: "TLSv1.2", ca: a.certPem });
  const withB = sharedTlsContext({ minVersion: "TLSv1.2", ca: b.certPem });
  assert.ok(withA && withB);
  assert.notEqual(withA, plain);
  assert.notEqual(withA, withB);
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", ca: a.certPem, servername: "x.test" }), withA);
  assert.notEqual(sharedTlsContext({ minVersion: "TLSv1.3" }), plain);
});

test("options that cannot be shared get no shared context; the cache is bounded", async () => {
  const c = await generateCertificate(["client.example.test"]);
  // A client certificate, a session to resume, CAs as a list: tls.connect builds its own, as before.
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", cert: c.certPem, key: c.keyPem }), undefined);
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", session: Buffer.alloc(1) }), undefined);
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", ca: [c.certPem] }), undefined);
  for (let i = 0; i < MAX_TLS_CONTEXTS + 4; i++) sharedTlsContext({ minVersion: "TLSv1.2", ciphers: `ECDHE-RSA-AES128-GCM-SHA256:X${i}` });
  assert.equal(sharedTlsContextCount(), MAX_TLS_CONTEXTS);
  assert.equal(sharedTlsContext({ minVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES256-GCM-SHA384:unseen" }), undefined);
});
