/**
 * The HTTPS listener end to end: Wardmail started with https.listen and a
 * certificate from a test CA; the MTA-STS policy fetched by our own outbound
 * fetcher (fetchStsPolicy, as a sending MTA would) and by curl, checked
 * against `wardmail domain dns`; Thunderbird autoconfig and Outlook
 * Autodiscover fetched with Node's https client and curl; hostile requests
 * (wrong host, other paths and methods, big bodies, many headers, old TLS)
 * answered with the right status and nothing else.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { once } from "node:events";
import https from "node:https";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { freePort } from "./peers/ports.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { fetchStsPolicy, parseStsPolicy } from "../src/outbound/index.ts";
import { CertFactory, type Issued } from "../src/outbound/mta-sts-testing.ts";

const skip = peerSkip(binaryMissing("curl", ["--version"], "curl"), binaryMissing("openssl", ["version"], "openssl"), binaryMissing("xmllint", ["--version"], "libxml2-utils"));

/** libxml2's xmllint: the document is well-formed XML (exit 0, nothing on stderr). */
function xmllint(xml: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile("xmllint", ["--noout", "--nonet", "-"], { timeout: 15_000 }, (err, _stdout, stderr) => resolve({ code: err === null ? 0 : 1, stderr }));
    c.stdin?.end(xml);
  });
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to 127.0.0.1:port with SNI and Host `host`, trusting only the test CA. */
function request(port: number, ca: string, host: string, path: string, opts: { method?: string; body?: string; headers?: Record<string, string>; maxVersion?: "TLSv1.1"; hostHeader?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1", port, servername: host, path, method: opts.method ?? "GET", ca, agent: false,
        headers: { host: opts.hostHeader ?? host, ...(opts.body !== undefined ? { "content-type": "text/xml", "content-length": String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers },
        ...(opts.maxVersion !== undefined ? { maxVersion: opts.maxVersion, minVersion: "TLSv1" as const } : {}),
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(opts.body);
  });
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", "10", "--noproxy", "*", ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

const HOSTS = ["mx.example.test", "mta-sts.example.test", "autoconfig.example.test", "autodiscover.example.test", "example.test"];

void describe("HTTPS listener: MTA-STS policy, autoconfig, autodiscover", { skip }, () => {
  let w: Wardmail;
  let certs: CertFactory;
  let ca: Issued;
  let port: number;
  let leaf: Issued;
  const resolve = (h: string): string => `${h}:${port}:127.0.0.1`;

  before(async () => {
    certs = await CertFactory.create();
    ca = await certs.caCert("Wardmail test CA");
    leaf = await certs.make({ names: HOSTS, issuer: ca });
    port = await freePort();
    w = await startWardmail({
      extra: [
        "[https]",
        `listen = ["127.0.0.1:${port}"]`,
        'mta_sts_mode = "testing"',
        "mta_sts_max_age = 86400",
        'imap_host = "imap.example.test"',
        "[tls]",
        `certificates = [{ cert = ${JSON.stringify(leaf.certPath)}, key = ${JSON.stringify(leaf.keyPath)} }]`,
      ].join("\n"),
    });
  });
  after(async () => {
    await w.stop();
    await w.cleanup();
    await certs.cleanup();
  });

  test("the policy, fetched and parsed by our own MTA-STS fetcher, is the one `wardmail domain dns` prints", async () => {
    assert.match(w.output(), new RegExp(`listening https +127\\.0\\.0\\.1:${port}`));
    const fetched = await fetchStsPolicy("example.test", { ca: ca.cert, connect: { host: "127.0.0.1", port }, timeoutMs: 10_000 });
    assert.ok(fetched.ok, JSON.stringify(fetched));
    const parsed = parseStsPolicy(fetched.body);
    assert.ok(parsed.ok, JSON.stringify(parsed));
    assert.equal(parsed.policy.mode, "testing");
    assert.deepEqual(parsed.policy.mx, ["mx.example.test"]);
    assert.equal(parsed.policy.maxAge, 86400);
    const dns = await w.cli(["domain", "dns", "example.test", "--config", w.configPath]);
    assert.equal(dns.code, 0, dns.stderr);
    const printed = dns.stdout.split("\n").filter((l) => l.startsWith(";   ")).map((l) => l.slice(4));
    assert.deepEqual(printed, fetched.body.split("\r\n").slice(0, -1));
    // No policy for a domain that is not ours, nor on another host name.
    const other = await fetchStsPolicy("other.test", { ca: ca.cert, connect: { host: "127.0.0.1", port }, timeoutMs: 10_000 });
    assert.equal(other.ok, false);
    const wrongHost = await request(port, ca.cert, "autoconfig.example.test", "/.well-known/mta-sts.txt");
    assert.equal(wrongHost.status, 404);
  });

  test("curl: the policy with security headers; TLS 1.1 refused", async () => {
    const r = await curl(["--cacert", ca.certPath, "--resolve", resolve("mta-sts.example.test"), "-D", "-", `https://mta-sts.example.test:${port}/.well-known/mta-sts.txt`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    assert.match(r.stdout, /^content-type: text\/plain; charset=utf-8\r$/m);
    assert.match(r.stdout, /^strict-transport-security: max-age=31536000\r$/m);
    assert.match(r.stdout, /^x-content-type-options: nosniff\r$/m);
    assert.match(r.stdout, /^content-security-policy: default-src 'none'; frame-ancestors 'none'\r$/m);
    assert.match(r.stdout, /\r\n\r\nversion: STSv1\r\nmode: testing\r\nmx: mx\.example\.test\r\nmax_age: 86400\r\n$/);
    const old = await curl(["--cacert", ca.certPath, "--resolve", resolve("mta-sts.example.test"), "--tlsv1.0", "--tls-max", "1.1", `https://mta-sts.example.test:${port}/.well-known/mta-sts.txt`]);
    assert.notEqual(old.code, 0, "TLS 1.1 must fail");
    await assert.rejects(request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { maxVersion: "TLSv1.1" }));
  });

  test("Thunderbird autoconfig on both paths announces 465/587 submission and the IMAP host", async () => {
    for (const [host, path] of [["autoconfig.example.test", "/mail/config-v1.1.xml?emailaddress=user%40example.test"], ["example.test", "/.well-known/autoconfig/mail/config-v1.1.xml"]] as const) {
      const r = await curl(["--cacert", ca.certPath, "--resolve", resolve(host), "-w", "\n%{http_code} %{content_type}", `https://${host}:${port}${path}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\n200 application\/xml; charset=utf-8$/);
      const xml = r.stdout;
      assert.match(xml, /<clientConfig version="1\.1">\n {2}<emailProvider id="example\.test">/);
      assert.match(xml, /<incomingServer type="imap">\s*<hostname>imap\.example\.test<\/hostname>\s*<port>993<\/port>\s*<socketType>SSL<\/socketType>/);
      assert.match(xml, new RegExp(`<outgoingServer type="smtp">\\s*<hostname>mx\\.example\\.test</hostname>\\s*<port>${w.submissionsPort}</port>\\s*<socketType>SSL</socketType>`));
      assert.match(xml, new RegExp(`<outgoingServer type="smtp">\\s*<hostname>mx\\.example\\.test</hostname>\\s*<port>${w.submissionPort}</port>\\s*<socketType>STARTTLS</socketType>`));
      assert.match(xml, /<username>%EMAILADDRESS%<\/username>/);
      const lint = await xmllint(xml.slice(0, xml.lastIndexOf("\n")));
      assert.deepEqual(lint, { code: 0, stderr: "" }, "well-formed XML (xmllint)");
    }
    assert.equal((await request(port, ca.cert, "autoconfig.example.test", "/mail/config-v1.1.xml", { hostHeader: "autoconfig.other.test" })).status, 404);
  });

  test("Outlook Autodiscover: POST with a local address; others 404; GET 405", async () => {
    const ask = (address: string): string =>
      `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>${address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`;
    const r = await request(port, ca.cert, "autodiscover.example.test", "/autodiscover/autodiscover.xml", { method: "POST", body: ask("user@Example.test") });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "application/xml; charset=utf-8");
    assert.match(r.body, /<Type>IMAP<\/Type>\s*<Server>imap\.example\.test<\/Server>\s*<Port>993<\/Port>[\s\S]*<LoginName>user@example\.test<\/LoginName>[\s\S]*<SSL>on<\/SSL>/);
    assert.match(r.body, new RegExp(`<Type>SMTP</Type>\\s*<Server>mx\\.example\\.test</Server>\\s*<Port>${w.submissionsPort}</Port>`));
    assert.match(r.body, new RegExp(`<Port>${w.submissionPort}</Port>[\\s\\S]*<Encryption>TLS</Encryption>`));
    const c = await curl(["--cacert", ca.certPath, "--resolve", resolve("autodiscover.example.test"), "-H", "content-type: text/xml", "--data-binary", ask("user@example.test"), `https://autodiscover.example.test:${port}/autodiscover/autodiscover.xml`]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /<AccountType>email<\/AccountType>/);
    assert.deepEqual(await xmllint(c.stdout), { code: 0, stderr: "" }, "well-formed XML (xmllint)");
    assert.equal((await request(port, ca.cert, "autodiscover.example.test", "/autodiscover/autodiscover.xml", { method: "POST", body: ask("user@other.test") })).status, 404);
    assert.equal((await request(port, ca.cert, "autodiscover.example.test", "/autodiscover/autodiscover.xml", { method: "POST", body: "<nothing/>" })).status, 400);
    const get = await request(port, ca.cert, "autodiscover.example.test", "/autodiscover/autodiscover.xml");
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, "POST");
  });

  test("hostile requests: other paths, methods, hosts, big bodies, many headers", async () => {
    for (const path of ["/", "/.well-known/", "/.well-known/mta-sts.txt/../../etc/passwd", "/mail/", "/index.html"]) {
      const r = await request(port, ca.cert, "mta-sts.example.test", path);
      assert.equal(r.status, 404, path);
      assert.equal(r.body, "not found\n");
      assert.equal(r.headers["x-frame-options"], "DENY");
    }
    const del = await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { method: "DELETE" });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, "GET, HEAD");
    const head = await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal((await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { hostHeader: "mta-sts.example.test:x" })).status, 404);
    const big = await request(port, ca.cert, "autodiscover.example.test", "/autodiscover/autodiscover.xml", { method: "POST", body: "x".repeat(9000) });
    assert.equal(big.status, 413);
    const headers = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, "1"]));
    assert.equal((await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { headers: headers(20) })).status, 200);
    const crowded = await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { headers: headers(40) }).catch((err: Error) => err);
    assert.ok(!(crowded instanceof Error) && (crowded.status === 400 || crowded.status === 431), `over ${32} headers refused: ${crowded instanceof Error ? crowded.message : crowded.status}`);
    const huge = await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt", { headers: { "x-big": "a".repeat(10_000) } }).catch((err: Error) => err);
    assert.ok(!(huge instanceof Error) && huge.status === 431, `headers over 8 KiB refused: ${huge instanceof Error ? huge.message : huge.status}`);
    // Still serving after all that.
    assert.equal((await request(port, ca.cert, "mta-sts.example.test", "/.well-known/mta-sts.txt")).status, 200);
  });

  test("SIGHUP: a new certificate in the same files is served to new connections", async () => {
    const fingerprint = (): Promise<string> =>
      new Promise((done, fail) => {
        const req = https.request({ host: "127.0.0.1", port, servername: "mta-sts.example.test", path: "/.well-known/mta-sts.txt", ca: ca.cert, agent: false, headers: { host: "mta-sts.example.test" } }, (res) => {
          const socket = res.socket as import("node:tls").TLSSocket;
          const fp = socket.getPeerCertificate().fingerprint256;
          res.resume();
          res.on("end", () => done(fp));
        });
        req.on("error", fail);
        req.end();
      });
    const before = await fingerprint();
    const next = await certs.make({ names: HOSTS, issuer: ca });
    await writeFile(leaf.keyPath, next.key);
    await writeFile(leaf.certPath, next.cert);
    process.kill(w.process.pid as number, "SIGHUP");
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await sleep(100);
      after = await fingerprint();
    }
    assert.notEqual(after, before, "the new certificate is served");
    assert.equal(after, new X509Certificate(next.cert).fingerprint256);
  });

  test("a request that never finishes its headers is cut off after the 10 s request timeout", async () => {
    const started = Date.now();
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "mta-sts.example.test", ca: ca.cert });
    await once(socket, "secureConnect");
    socket.write("GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nX-Slow: ");
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
    socket.on("error", () => undefined);
    const closed = once(socket, "close");
    const limit = setTimeout(() => socket.destroy(), 20_000);
    await closed;
    clearTimeout(limit);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 9_000 && elapsed < 15_000, `closed after ${elapsed} ms`);
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });
});
