// Tests for the folder's public face: choosing operator pairs or the self-signed one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { TlsManager, resolveCertificatePairs, selfSignedDir } from "./index.ts";

const logger = pino({ level: "silent" });
const tlsSection = { minVersion: "TLSv1.2" as const, ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384", groups: "X25519MLKEM768/X25519:P-256", mxSessionTickets: false, watch: false };

void test("no operator certificates: a self-signed pair in <dataDir>/tls, usable by TlsManager", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "wardmail-tlsi-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const config = { server: { hostname: "mx.example.test", dataDir, workers: 1, user: "", group: "" }, tls: { ...tlsSection, certificates: [] } };
  const pairs = await resolveCertificatePairs(config, logger);
  assert.deepEqual(pairs, [{ cert: join(dataDir, "tls", "selfsigned.crt"), key: join(dataDir, "tls", "selfsigned.key") }]);
  assert.equal(selfSignedDir(config), join(dataDir, "tls"));
  assert.equal((await stat(join(dataDir, "tls"))).mode & 0o777, 0o700);
  const x509 = new X509Certificate(await readFile(join(dataDir, "tls", "selfsigned.crt")));
  assert.equal(x509.checkHost("mx.example.test"), "mx.example.test");

  const m = await TlsManager.create({ ...tlsSection, pairs, logger });
  t.after(() => m.close());
  assert.deepEqual(m.certificates()[0]?.names, ["mx.example.test"]);
});

void test("operator certificates are used as given; nothing is generated", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "wardmail-tlsi-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const certificates = [{ cert: "/etc/x/fullchain.pem", key: "/etc/x/privkey.pem" }];
  const config = { server: { hostname: "mx.example.test", dataDir, workers: 1, user: "", group: "" }, tls: { ...tlsSection, certificates } };
  assert.equal(await resolveCertificatePairs(config, logger), certificates);
  await assert.rejects(stat(join(dataDir, "tls")), { code: "ENOENT" });
});
