// Config warnings (warnings.ts): what a public server should not keep, each
// with its key and line; quiet on loopback; trusting 0.0.0.0/0 or ::/0 as
// relay clients is an error. Certificates are real ones made by our own
// generator (self-signed), read back from files.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { generateCertificate } from "../tls/index.ts";
import { checkConfigFile, loadConfigWithWarnings, type ConfigIssue } from "./index.ts";
import { coversEverything, includesPublic } from "./warnings.ts";

let dir = "";
const REMOTE_DNS = { nameservers: () => [{ host: "192.0.2.53" }] };
const LOOPBACK_DNS = { nameservers: () => [{ host: "127.0.0.53" }] };

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "wardmail-warnings-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return file;
}

async function warningsOf(name: string, content: string, opts = REMOTE_DNS): Promise<ConfigIssue[]> {
  const file = await write(name, content);
  return (await loadConfigWithWarnings(file, {}, opts)).warnings;
}

test("a loopback-only config (the demo) gets no warning, even with a remote resolver", async () => {
  assert.deepEqual((await loadConfigWithWarnings(undefined, {}, REMOTE_DNS)).warnings, []);
  assert.deepEqual(await warningsOf("loop.toml", '[smtp]\nlisten = ["127.0.0.2:2525", "[::1]:2525"]\n'), []);
});

test("a public listener with every default: host name, certificate, domains, data directory, DNS; each with key and line", async () => {
  const w = await warningsOf("public.toml", '# a first try\n[smtp]\nlisten = ["0.0.0.0:25"]\n');
  const which = "smtp.listen[0] (line 3) listens on 0.0.0.0:25";
  assert.deepEqual(w, [
    { key: "server.hostname", line: 0, message: `"localhost" is not this host's public name, but ${which}; expected the fully qualified name that the host's address resolves to and back (its A/AAAA and PTR records), which other servers see in the greeting and check (a default value)` },
    { key: "server.data_dir", line: 0, message: `not set: $WARDMAIL_HOME or ./var in the directory serve starts in (${process.cwd()}/var here), but ${which}; expected an absolute path such as /var/lib/wardmail (a default value)` },
    { key: "tls.certificates", line: 0, message: `no certificate: the self-signed one in ${process.cwd()}/var/tls is used, but ${which}; mail clients refuse it on submission, and senders that enforce MTA-STS or DANE do not deliver to it; expected a certificate for localhost from a CA (e.g. Let's Encrypt) (a default value)` },
    { key: "local.domains", line: 0, message: `localhost, example.test are the demo domains, but ${which}; expected the domains this server receives mail for (a default value)` },
    { key: "dns.servers", line: 0, message: `not every DNS server is on loopback (192.0.2.53, from /etc/resolv.conf), so their AD bit is not believed and DANE is off for outbound mail; expected a validating resolver on this host (e.g. Unbound on 127.0.0.1), with dns.servers = ["127.0.0.1"] (a default value)` },
  ]);
});

test("written keys are named at their line; a name without a dot or under a reserved TLD is not a public name", async () => {
  const text = [
    "[server]", //                                   1
    'hostname = "mail.example.test"', //              2
    'data_dir = "/var/lib/wardmail"', //              3
    "[submissions]", //                               4
    'listen = ["192.0.2.10:465"]', //                 5
    "[local]", //                                     6
    'domains = ["example.org"]', //                   7
    'mailboxes = ["postmaster@example.org"]', //     8
    "[dns]", //                                       9
    'servers = ["127.0.0.1", "192.0.2.53:5353"]', // 10
    "",
  ].join("\n");
  const w = await warningsOf("written.toml", text, LOOPBACK_DNS);
  assert.deepEqual(w.map((x) => [x.line, x.key, x.message.slice(0, 60)]), [
    [0, "tls.certificates", "no certificate: the self-signed one in /var/lib/wardmail/tls"],
    [2, "server.hostname", '"mail.example.test" is not this host\'s public name, but subm'],
    [10, "dns.servers", "not every DNS server is on loopback (127.0.0.1, 192.0.2.53),"],
  ]);
  assert.match(w[1]?.message ?? "", /but submissions\.listen\[0\] \(line 5\) listens on 192\.0\.2\.10:465;/);
  assert.doesNotMatch(w[1]?.message ?? "", /a default value/);
  const bare = await warningsOf("bare.toml", text.replace("mail.example.test", "mail"), LOOPBACK_DNS);
  assert.match(bare[1]?.message ?? "", /^"mail" is not this host's public name/);
});

test("DANE: a loopback resolver is quiet; trust_ad = never warns at its line", async () => {
  const base = '[server]\nhostname = "mx.example.org"\ndata_dir = "/srv/wm"\n[local]\ndomains = ["example.org"]\nmailboxes = ["postmaster@example.org"]\n[smtp]\nlisten = ["[::]:25"]\n';
  const quiet = await warningsOf("dane1.toml", base + '[dns]\nservers = ["[::1]:53"]\n');
  assert.deepEqual(quiet.map((x) => x.key), ["tls.certificates"]);
  const never = await warningsOf("dane2.toml", base + '[dns]\ntrust_ad = "never"\n', LOOPBACK_DNS);
  assert.deepEqual(never.filter((x) => x.key.startsWith("dns")), [
    { key: "dns.trust_ad", line: 10, message: '"never": DANE is off for outbound mail; expected "loopback" with a validating resolver (Unbound, Knot Resolver) on this host' },
  ]);
});

test("MX on another port, AUTH on the MX, checks off on a public MX, trusted networks with public addresses", async () => {
  const text = [
    "[smtp]", //                                                        1
    'listen = ["127.0.0.1:2525", "192.0.2.1:2525"]', //                 2
    "[auth]", //                                                        3
    "on_mx = true", //                                                  4
    "[checks]", //                                                      5
    "enabled = false", //                                               6
    "[relay]", //                                                       7
    "trusted_networks = [", //                                          8
    '  "127.0.0.1", "10.0.0.0/8", "fd00::/8", "192.0.2.0/24",', //      9
    '  "203.0.113.7/32",', //                                          10
    '  "198.51.0.0/16",', //                                           11
    '  "::ffff:8.8.8.8",', //                                          12
    "]", //                                                            13
    "",
  ].join("\n");
  const w = (await warningsOf("mx.toml", text, LOOPBACK_DNS)).filter((x) => x.line > 0);
  const publicNet = "includes public addresses: every host in it may relay through this server without AUTH and skips the sender checks; expected only networks you control (loopback, your LAN, one address of your own server)";
  assert.deepEqual(w, [
    { key: "smtp.listen[1]", line: 2, message: "192.0.2.1:2525 is public but not on port 25; other mail servers deliver to port 25 only (unless a firewall forwards it)" },
    { key: "auth.on_mx", line: 4, message: "AUTH is offered on the MX listener, where the whole Internet connects and guesses passwords; expected false: clients log in on submission (465/587)" },
    { key: "checks.enabled", line: 6, message: "false on a public MX: inbound mail gets no SPF, DKIM or DMARC check, so mail forging your own domains is let in; expected true" },
    { key: "relay.trusted_networks[5]", line: 11, message: `198.51.0.0/16 ${publicNet}` },
    { key: "relay.trusted_networks[6]", line: 12, message: `::ffff:8.8.8.8/128 ${publicNet}` },
  ]);
});

test("every IPv4 or IPv6 address as a trusted network is an error, not a warning", async () => {
  const file = await write("open.toml", '[relay]\ntrusted_networks = [\n  "10.0.0.0/8",\n  "0.0.0.0/0",\n  "::ffff:0.0.0.0/96",\n  "::/0",\n]\n');
  const r = await checkConfigFile(file, LOOPBACK_DNS);
  assert.equal(r.ok, false);
  assert.deepEqual(r.warnings, []);
  const tail = "the whole Internet could relay through this server without AUTH (an open relay); expected only networks you control";
  assert.deepEqual(r.issues, [
    { key: "relay.trusted_networks[1]", line: 4, message: `0.0.0.0/0 is every IPv4 address: ${tail}` },
    { key: "relay.trusted_networks[2]", line: 5, message: `::ffff:0.0.0.0/96 is every IPv4 address: ${tail}` },
    { key: "relay.trusted_networks[3]", line: 6, message: `::/0 is every IPv6 address: ${tail}` },
  ]);
});

test("which networks include public addresses", () => {
  const cases: [string, boolean][] = [
    ["127.0.0.1/32", false], ["10.1.0.0/16", false], ["172.16.0.0/12", false], ["172.16.0.0/11", true],
    ["192.168.1.0/24", false], ["100.64.0.0/10", false], ["169.254.0.0/16", false], ["8.8.8.8/32", true],
    ["0.0.0.0/1", true], ["::1/128", false], ["fd12:3456::/32", false], ["fe80::/64", false],
    ["2001:db8::/32", false], ["2001:db8::/31", true], ["2a01:4f8::/32", true], ["::ffff:10.0.0.1/128", false],
    ["::ffff:1.2.3.4/128", true], ["::/0", true],
  ];
  for (const [n, expected] of cases) assert.equal(includesPublic(n), expected, n);
  assert.equal(coversEverything("0.0.0.0/0"), "IPv4");
  assert.equal(coversEverything("::ffff:0:0/96"), "IPv4");
  assert.equal(coversEverything("::/0"), "IPv6");
  assert.equal(coversEverything("0.0.0.0/1"), undefined);
  assert.equal(coversEverything("::ffff:0:0/95"), undefined);
});

test("certificates: self-signed, expired, soon expiring, not yet valid, not naming the host", async () => {
  const own = await generateCertificate(["mx.example.org"], { days: 10 });
  await write("own.crt", own.certPem);
  await write("own.key", own.keyPem);
  const other = await generateCertificate(["other.example.org"], { notBefore: new Date(Date.now() + 86_400_000), days: 90 });
  await write("other.crt", other.certPem);
  await write("other.key", other.keyPem);
  const text = [
    "[server]", //                                                        1
    'hostname = "mx.example.org"', //                                     2
    'data_dir = "/srv/wm"', //                                            3
    "[local]", //                                                         4
    'domains = ["example.org"]', //                                       5
    'mailboxes = ["postmaster@example.org"]', //                          6
    "[smtp]", //                                                          7
    'listen = ["0.0.0.0:25"]', //                                         8
    "[dns]", //                                                           9
    'servers = ["127.0.0.1"]', //                                        10
    "[tls]", //                                                          11
    "certificates = [", //                                               12
    '  { cert = "other.crt", key = "other.key" },', //                   13
    "]", //                                                              14
    "",
  ].join("\n");
  const c1 = path.join(dir, "other.crt");
  let w = await warningsOf("certs.toml", text);
  assert.deepEqual(w.map((x) => [x.line, x.key, x.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "DATE")]), [
    [12, "tls.certificates", "no certificate names server.hostname (mx.example.org); clients and MTA-STS senders check that the MX host name is in the certificate"],
    [13, "tls.certificates[0].cert", `${c1} is not valid before DATE`],
    [13, "tls.certificates[0].cert", `${c1} is self-signed; mail clients refuse it, and senders that enforce MTA-STS or DANE (unless its TLSA record names it) do not deliver; expected a certificate from a CA`],
  ]);
  const c2 = path.join(dir, "own.crt");
  w = await warningsOf("certs2.toml", text.replaceAll("other.", "own."));
  assert.deepEqual(w.map((x) => [x.line, x.key, x.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "DATE")]), [
    [13, "tls.certificates[0].cert", `${c2} expires on DATE, in less than 14 days; renew it`],
    [13, "tls.certificates[0].cert", `${c2} is self-signed; mail clients refuse it, and senders that enforce MTA-STS or DANE (unless its TLSA record names it) do not deliver; expected a certificate from a CA`],
  ]);
  const file = await write("certs3.toml", text.replaceAll("other.", "own."));
  const later = await loadConfigWithWarnings(file, {}, { nameservers: () => [], now: Date.now() + 30 * 86_400_000 });
  assert.match(later.warnings[0]?.message ?? "", new RegExp(`^${c2} expired on \\d{4}-.*; clients refuse it$`));
});

test("serve as root without server.user: a warning at server.user (config check does not know who will serve)", async () => {
  const file = await write("root.toml", '[server]\nworkers = 1\n');
  const asRoot = await loadConfigWithWarnings(file, {}, { ...LOOPBACK_DNS, asRoot: true });
  assert.deepEqual(asRoot.warnings, [
    { key: "server.user", line: 1, message: 'empty while serve runs as root, so it keeps root after binding; expected an unprivileged user (e.g. "wardmail"), or start it as that user with CAP_NET_BIND_SERVICE (deploy/wardmail.service) (a default value)' },
  ]);
  assert.deepEqual((await loadConfigWithWarnings(file, {}, LOOPBACK_DNS)).warnings, []);
  const named = await write("root2.toml", '[server]\nuser = "nobody"\n');
  assert.deepEqual((await loadConfigWithWarnings(named, {}, { ...LOOPBACK_DNS, asRoot: true })).warnings, []);
});

test("spool.encrypt = false warns at its line, even on loopback", async () => {
  const w = await warningsOf("plain-spool.toml", "[spool]\nencrypt = false\n");
  assert.deepEqual(w, [
    { key: "spool.encrypt", line: 2, message: "false: queued mail (content, senders, recipients) is written to the spool files in plaintext, readable by anyone who gets a copy of them; expected true" },
  ]);
  assert.deepEqual(await warningsOf("sealed-spool.toml", "[spool]\nencrypt = true\n"), []);
});

test("a metrics listener off loopback warns at its line; on loopback it is quiet", async () => {
  const quiet = await warningsOf("metrics-lo.toml", '[metrics]\nlisten = ["127.0.0.1:9587", "[::1]:9587"]\n');
  assert.deepEqual(quiet, []);
  const loud = await warningsOf("metrics-pub.toml", '[metrics]\nlisten = ["127.0.0.1:9587", "0.0.0.0:9587"]\n');
  assert.deepEqual(loud.map((w) => [w.key, w.line]), [["metrics.listen[1]", 2]]);
  assert.match(loud[0]?.message ?? "", /no authentication/);
});

test("ACME and tls.certificates together: the certificates are ignored, said at their line", async () => {
  const pair = await generateCertificate(["localhost"], { days: 90 });
  await write("acme-own.crt", pair.certPem);
  await write("acme-own.key", pair.keyPem);
  const w = await warningsOf("acme.toml", '[tls]\ncertificates = [{ cert = "acme-own.crt", key = "acme-own.key" }]\n[acme]\ndirectory = "https://acme.example/dir"\n', LOOPBACK_DNS);
  const mine = w.filter((i) => i.key === "tls.certificates");
  assert.equal(mine.length, 1, JSON.stringify(w));
  assert.match(mine[0]?.message ?? "", /ignored while acme.directory is set/);
});

test("the HTTPS listener with ACME: host names missing from acme.domains warn at https.listen", async () => {
  const base = '[local]\ndomains = ["example.org"]\nmailboxes = ["postmaster@example.org"]\n[https]\nlisten = ["127.0.0.1:8443"]\n[acme]\ndirectory = "https://acme.example/dir"\n';
  const loud = (await warningsOf("https-acme.toml", base, LOOPBACK_DNS)).filter((i) => i.key === "https.listen");
  assert.deepEqual(loud.map((w) => [w.key, w.line]), [["https.listen", 5]]);
  assert.match(loud[0]?.message ?? "", /does not name mta-sts\.example\.org, autoconfig\.example\.org, autodiscover\.example\.org: MTA-STS senders/);
  const named = `${base}domains = ["mx.example.org", "mta-sts.example.org", "autoconfig.example.org", "autodiscover.example.org"]\n`;
  assert.deepEqual((await warningsOf("https-acme-ok.toml", named, LOOPBACK_DNS)).filter((i) => i.key === "https.listen"), []);
});
