// parseConfig / defaultConfig: defaults, per-key merge, every kind of error
// with its key and line, path resolution, WARDMAIL_HOME, deep freezing.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Config, ConfigIssue } from "./index.ts";
import { CONFIG_KEYS, ConfigError, defaultConfig, formatIssues, parseConfig, tomlLiteral } from "./index.ts";

const CWD = "/srv/wm";
const FILE = "/etc/wardmail/wardmail.toml";
const parse = (src: string, env: NodeJS.ProcessEnv = {}): Config => parseConfig(src, { file: FILE, env, cwd: CWD });

/** The issues parseConfig reports for `src` (fails if it does not throw ConfigError). */
function issuesOf(src: string, env: NodeJS.ProcessEnv = {}): ConfigIssue[] {
  try {
    parse(src, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.issues];
  }
  assert.fail("expected a ConfigError");
}

/** The one issue for `src`, checked to have this key and line. */
function oneIssue(src: string, key: string, line: number): ConfigIssue {
  const issues = issuesOf(src);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  const [issue] = issues;
  assert.ok(issue);
  assert.equal(issue.key, key);
  assert.equal(issue.line, line);
  return issue;
}

const EXPECTED_DEFAULTS: Config = {
  server: { hostname: "localhost", dataDir: "/srv/wm/var", workers: 0, user: "", group: "" },
  smtp: { listen: [{ host: "127.0.0.1", port: 2525 }] },
  submission: { listen: [{ host: "127.0.0.1", port: 2587 }] },
  submissions: { listen: [{ host: "127.0.0.1", port: 2465 }] },
  tls: {
    certificates: [],
    minVersion: "TLSv1.2",
    ciphers:
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" +
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    groups: "X25519MLKEM768/X25519:P-256/X448:P-384:P-521",
    mxSessionTickets: false,
    watch: true,
  },
  limits: {
    max_line_length: 2048,
    max_message_size: 26214400,
    max_header_size: 102400,
    max_recipients: 100,
    max_errors: 10,
    idle_timeout: 300,
    data_timeout: 180,
    max_connections: 1000,
    tls_handshake_timeout: 30,
    max_commands: 10000,
    min_free_space: 104857600,
    max_connections_per_client: 30,
    connections_per_client_per_minute: 120,
    messages_per_client_per_minute: 120,
    recipients_per_client_per_minute: 600,
    client_ipv6_prefix: 64,
    max_mx_connections: 800,
    max_submission_connections: 300,
    pregreet_delay: 1000,
    pregreet_ban_time: 3600,
    pregreet_pass_time: 86400,
    command_timeout: 60,
    session_timeout: 3600,
    min_data_rate: 1024,
    stress_timeout: 10,
    error_delay: 1000,
    memory_budget: 2147483648,
    worker_heap_limit: 536870912,
    max_handoff_bytes: 4194304,
  },
  protocol: { bareLineEndings: "reject", eightBitWithout8bitmime: "accept", strictPipelining: true },
  spool: { maxBatch: 256, encrypt: true },
  local: {
    domains: ["localhost", "example.test"],
    mailboxes: ["postmaster@localhost", "postmaster@example.test"],
    discard: [],
    aliases: {},
    maildir: "/srv/wm/var/mail/%d/%n",
    lmtp: {},
  },
  auth: {
    mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"],
    onMx: false,
    failureDelay: 1000,
    maxFailureDelay: 15000,
    ipMaxFailures: 10,
    ipWindow: 900,
    ipBlock: 900,
    accountMaxFailures: 30,
    accountWindow: 900,
    accountLock: 900,
    knownNetworkWindow: 604800,
  },
  relay: { trustedNetworks: [] },
  accounts: { maxMessagesPerHour: 200, maxRecipientsPerHour: 1000 },
  accountHold: { holdFactor: 10, holdMinMessages: 50, holdMinRecipients: 200, holdHistory: 14, holdRefusedPercent: 50, holdRefusedMin: 20 },
  dns: { servers: [], timeout: 2000, attempts: 3, cacheSize: 10000, trustAd: "loopback" },
  checks: {
    enabled: true,
    authservId: "",
    timeout: 20,
    trustedArcSealers: [],
    actions: {
      "spf.fail": "tag",
      "spf.softfail": "tag",
      "spf.temperror": "tag",
      "spf.permerror": "tag",
      "dkim.fail": "tag",
      "dkim.temperror": "tag",
      "arc.fail": "tag",
      "dmarc.reject": "reject",
      "dmarc.quarantine": "quarantine",
      "dmarc.temperror": "tag",
      "dnsbl.listed": "reject",
      "from.missing": "reject",
      "from.duplicate": "reject",
      "from.invalid": "reject",
      "from.multiple_domains": "reject",
      "local.mail_from": "reject",
      "local.from": "reject",
      "local.from_name": "quarantine",
      "local.temperror": "tempfail",
      "spam.reject": "reject",
      "spam.soft_reject": "tempfail",
      "spam.greylist": "tempfail",
      "spam.add_header": "tag",
      "spam.rewrite_subject": "tag",
      "spam.error": "tag",
      "impersonation.domain": "tag",
      "impersonation.name": "tag",
      "virus.found": "reject",
      "virus.error": "tempfail",
      "virus.too_large": "tag",
      "attachment.executable": "reject",
      "attachment.disk_image": "reject",
      "attachment.macro": "reject",
      "attachment.encrypted_archive": "quarantine",
      "attachment.unscannable": "quarantine",
    },
    dmarcOverrides: {},
  },
  dnsbl: { zones: [], threshold: 1, timeout: 5 },
  spam: { rspamd: "", timeout: 10, maxSize: 20971520 },
  impersonation: { enabled: true, externalTag: false },
  antivirus: { enabled: true, timeout: 15, maxSize: 26214400 },
  attachments: { enabled: true, maxDepth: 5, maxArchiveEntries: 1000, maxUnpacked: 67108864, overrides: {} },
  queue: { retryMin: 300, concurrency: 16, retryMax: 14400, lifetime: 432000, delayNotice: 14400 },
  outbound: { port: 25, maxConnectionsPerDomain: 4, messagesPerConnection: 50, connectionCacheTime: 2, connectionMaxAge: 300, tlsPolicy: {}, tlsrptInterval: 3600, relays: [] },
  log: { level: "info" },
  metrics: { listen: [] },
  acme: { directory: "", email: "", domains: [], httpListen: [{ host: "0.0.0.0", port: 80 }], caFile: "", renewBefore: 30, keepKey: true },
  https: { listen: [], mtaStsMode: "enforce", mtaStsMx: [], mtaStsMaxAge: 604800, imapHost: "", imapPort: 993, imapTls: "implicit" },
};

void test("outbound TLS policies and relays are checked", () => {
  const c = parse('[outbound.tls_policy]\n"Bank.example" = "dane-only"\n[[outbound.relays]]\ndomains = ["*"]\nhost = "smtp.provider.example:587"\nuser = "me"\npassword_file = "relay.pw"\n');
  assert.deepEqual(c.outbound.tlsPolicy, { "bank.example": "dane-only" });
  assert.deepEqual(c.outbound.relays, [{ domains: ["*"], host: "smtp.provider.example", port: 587, tls: "required", caFile: "", user: "me", passwordFile: "/etc/wardmail/relay.pw" }]);
  oneIssue('[outbound.tls_policy]\n"x.example" = "none"\n', 'outbound.tls_policy."x.example"', 2);
  assert.ok(issuesOf('[[outbound.relays]]\ndomains = ["*"]\nhost = "nohostport"\n').some((i) => i.key === "outbound.relays[0].host"));
  assert.ok(issuesOf('[[outbound.relays]]\ndomains = ["*"]\nhost = "h.example:25"\nuser = "x"\n').length > 0);
  // A private CA for the relay; TLS without verification only when asked for, and never with AUTH.
  const ca = parse('[[outbound.relays]]\ndomains = ["*"]\nhost = "relay.example:25"\nca_file = "relay-ca.pem"\n[[outbound.relays]]\ndomains = ["x.example"]\nhost = "10.0.0.1:25"\ntls = "encrypt"\n');
  assert.deepEqual(ca.outbound.relays.map((r) => [r.tls, r.caFile]), [["required", "/etc/wardmail/relay-ca.pem"], ["encrypt", ""]]);
  for (const tls of ["encrypt", "may"]) oneIssue(`[[outbound.relays]]\ndomains = ["*"]\nhost = "h.example:25"\ntls = "${tls}"\nuser = "me"\npassword_file = "p"\n`, "outbound.relays[0].tls", 4);
  oneIssue('[[outbound.relays]]\ndomains = ["*"]\nhost = "h.example:25"\ntls = "none"\n', "outbound.relays[0].tls", 4);
});

void test("ARC sealing keys come together", () => {
  const issues = issuesOf('[checks]\narc_seal_domain = "example.org"\n');
  assert.deepEqual(issues.map((i) => i.key).sort(), ["checks.arc_seal_key", "checks.arc_seal_selector"]);
  oneIssue('[checks]\narc_seal_domain = "example.org"\narc_seal_selector = "bad selector"\narc_seal_key = "k.pem"\n', "checks.arc_seal_selector", 3);
  const c = parse('[checks]\narc_seal_domain = "Example.org"\narc_seal_selector = "arc2026"\narc_seal_key = "keys/arc.pem"\n');
  assert.deepEqual(c.checks.arcSeal, { domain: "example.org", selector: "arc2026", key: "/etc/wardmail/keys/arc.pem" });
});

void test("dns servers, check actions and DMARC overrides are checked", () => {
  const c = parse('[dns]\nservers = ["127.0.0.1:5353", "192.0.2.1", "::1", "[2001:db8::1]:5300"]\n[checks]\nauthserv_id = "MX.Example.ORG"\n[checks.actions]\n"dmarc.reject" = "quarantine"\n[checks.dmarc_overrides]\n"Example.COM" = "none"\n');
  assert.deepEqual(c.dns.servers, [{ host: "127.0.0.1", port: 5353 }, { host: "192.0.2.1", port: 53 }, { host: "::1", port: 53 }, { host: "2001:db8::1", port: 5300 }]);
  assert.equal(c.checks.authservId, "mx.example.org");
  assert.equal(c.checks.actions["dmarc.reject"], "quarantine");
  assert.equal(c.checks.actions["dmarc.quarantine"], "quarantine");
  assert.deepEqual(c.checks.dmarcOverrides, { "example.com": "none" });
  oneIssue('[dns]\nservers = ["dns.example.org"]\n', "dns.servers[0]", 2);
  oneIssue('[checks.actions]\n"dmarc.bogus" = "reject"\n', 'checks.actions."dmarc.bogus"', 2);
  oneIssue('[checks.actions]\n"dmarc.reject" = "drop"\n', 'checks.actions."dmarc.reject"', 2);
  oneIssue('[checks.dmarc_overrides]\n"example.com" = "pass"\n', 'checks.dmarc_overrides."example.com"', 2);
});

void test("auth mechanisms, trusted networks and account limits are checked", () => {
  const c = parse('[auth]\nmechanisms = ["plain", "SCRAM-SHA-256"]\n[relay]\ntrusted_networks = ["127.0.0.1", "2001:DB8::/64"]\n');
  assert.deepEqual(c.auth.mechanisms, ["PLAIN", "SCRAM-SHA-256"]);
  assert.deepEqual(c.relay.trustedNetworks, ["127.0.0.1/32", "2001:db8::/64"]);
  oneIssue('[auth]\nmechanisms = ["CRAM-MD5"]\n', "auth.mechanisms[0]", 2);
  oneIssue('[relay]\ntrusted_networks = ["10.0.0.0/33"]\n', "relay.trusted_networks[0]", 2);
  oneIssue('[relay]\ntrusted_networks = ["example.org"]\n', "relay.trusted_networks[0]", 2);
  oneIssue("[accounts]\nmax_messages_per_hour = 0\n", "accounts.max_messages_per_hour", 2);
});

// ------------------------------------------------------------------ defaults and merge

void test("defaults are the documented defaults", () => {
  assert.deepEqual(defaultConfig({}, CWD), EXPECTED_DEFAULTS);
  assert.deepEqual(parse(""), EXPECTED_DEFAULTS);
});

void test("writing every key at its CONFIG_KEYS default gives the defaults", () => {
  const bySection = new Map<string, string[]>();
  for (const k of CONFIG_KEYS) {
    const [section = "", name = ""] = k.key.split(".");
    const lines = bySection.get(section) ?? [];
    lines.push(`${name} = ${tomlLiteral(k.default)}`);
    bySection.set(section, lines);
  }
  const src = [...bySection].map(([s, lines]) => `[${s}]\n${lines.join("\n")}`).join("\n\n");
  assert.deepEqual(parse(src), EXPECTED_DEFAULTS);
});

void test("a one-line file keeps every other default", () => {
  const a = parse('server.hostname = "MX.Example.org."');
  assert.deepEqual(a, { ...EXPECTED_DEFAULTS, server: { ...EXPECTED_DEFAULTS.server, hostname: "mx.example.org" } });
  const b = parse("[limits]\nmax_recipients = 50\n");
  assert.deepEqual(b, { ...EXPECTED_DEFAULTS, limits: { ...EXPECTED_DEFAULTS.limits, max_recipients: 50 } });
});

void test("an array in the file replaces the default array", () => {
  const c = parse('[smtp]\nlisten = ["0.0.0.0:25", "[::]:25"]\n[submission]\nlisten = []');
  assert.deepEqual(c.smtp.listen, [{ host: "0.0.0.0", port: 25 }, { host: "::", port: 25 }]);
  assert.deepEqual(c.submission.listen, []);
  assert.deepEqual(c.submissions, EXPECTED_DEFAULTS.submissions);
});

void test("a full local section is normalised: lowercase, trailing dots dropped, duplicate targets merged", () => {
  const c = parse(`
[local]
domains = ["Example.ORG."]
mailboxes = ["Alice@example.org", "bob@EXAMPLE.org"]
discard = ["NoReply@example.org"]
maildir = "/var/mail/%d/%n"
[local.aliases]
"Team@Example.org" = ["alice@example.org", "ALICE@example.org", "bob@example.org", "Friend@Elsewhere.test", "noreply@example.org"]
"all@example.org" = ["team@example.org"]
`);
  assert.deepEqual(c.local, {
    domains: ["example.org"],
    mailboxes: ["alice@example.org", "bob@example.org"],
    discard: ["noreply@example.org"],
    aliases: {
      "team@example.org": ["alice@example.org", "bob@example.org", "friend@elsewhere.test", "noreply@example.org"],
      "all@example.org": ["team@example.org"],
    },
    maildir: "/var/mail/%d/%n",
    lmtp: {},
  });
});

void test("local.discard: in a local domain, not also a mailbox or an alias", () => {
  const bad = `[local]
domains = ["example.org"]
mailboxes = ["alice@example.org"]
discard = ["alice@example.org", "x@elsewhere.test"]
`;
  assert.throws(() => parse(bad), (err: Error) => /local\.discard\[0\].*also a mailbox/.test(err.message) && /local\.discard\[1\].*not in a local domain/.test(err.message));
});

// ------------------------------------------------------------------ paths and environment

void test("WARDMAIL_HOME is the default data_dir; the file wins over it; empty is ignored", () => {
  assert.equal(parse("", { WARDMAIL_HOME: "/opt/wm" }).server.dataDir, "/opt/wm");
  assert.equal(parse("", { WARDMAIL_HOME: "/opt/wm" }).local.maildir, "/opt/wm/mail/%d/%n");
  assert.equal(parse("", { WARDMAIL_HOME: "rel/home" }).server.dataDir, "/srv/wm/rel/home");
  assert.equal(defaultConfig({ WARDMAIL_HOME: "/opt/wm" }, CWD).server.dataDir, "/opt/wm");
  assert.equal(parse('server.data_dir = "/data"', { WARDMAIL_HOME: "/opt/wm" }).server.dataDir, "/data");
  assert.equal(parse("", { WARDMAIL_HOME: "" }).server.dataDir, "/srv/wm/var");
});

void test("paths come out absolute: data_dir from cwd, certificates from the file's directory, maildir from data_dir", () => {
  const c = parse(`
server.data_dir = "state"
local.maildir = "boxes/%d/%n"
[tls]
certificates = [{ cert = "certs/a.pem", key = "/keys/a.key" }]
`);
  assert.equal(c.server.dataDir, "/srv/wm/state");
  assert.equal(c.local.maildir, "/srv/wm/state/boxes/%d/%n");
  assert.deepEqual(c.tls.certificates, [{ cert: "/etc/wardmail/certs/a.pem", key: "/keys/a.key" }]);
});

void test("a relative file name resolves against cwd for certificate paths", () => {
  const c = parseConfig('tls.certificates = [{ cert = "c.pem", key = "k.pem" }]', { file: "conf/w.toml", env: {}, cwd: CWD });
  assert.deepEqual(c.tls.certificates, [{ cert: "/srv/wm/conf/c.pem", key: "/srv/wm/conf/k.pem" }]);
});

void test("the result is deeply frozen", () => {
  const c = parse('[local.aliases]\n"a@localhost" = ["postmaster@localhost"]');
  const walk = (v: unknown, where: string): void => {
    if (v === null || typeof v !== "object") return;
    assert.ok(Object.isFrozen(v), `${where} is not frozen`);
    for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
  };
  walk(c, "config");
  assert.throws(() => {
    (c.limits as { max_recipients: number }).max_recipients = 1;
  }, TypeError);
  assert.throws(() => (c.smtp.listen as unknown[]).push(1), TypeError);
  // Freezing one result must not freeze or share anything with the next.
  assert.notEqual(parse("").local.domains, parse("").local.domains);
});

// ------------------------------------------------------------------ unknown keys, types, ranges, enums

void test("an unknown top-level section or key is an error on its line", () => {
  const a = oneIssue('[server]\nhostname = "a.test"\n\n[serverr]\nx = 1\n', "serverr", 4);
  assert.match(a.message, /unknown key; did you mean "server"\?/);
  const b = oneIssue("\n\nfoo = 1\n", "foo", 3);
  assert.match(b.message, /unknown key; expected one of the sections: server, smtp/);
});

void test("an unknown nested key is an error on its line, with a suggestion", () => {
  const a = oneIssue("[limits]\nmax_errors = 5\nmax_recipient = 5\n", "limits.max_recipient", 3);
  assert.match(a.message, /did you mean "max_recipients"/);
  oneIssue('[server]\nwhatever = "x"', "server.whatever", 2);
  oneIssue("[local.other]\nx = 1", "local.other", 1);
  const c = oneIssue('[tls]\ncertificates = [\n  { cert = "a", key = "b", pass = "x" },\n]', "tls.certificates[0].pass", 3);
  assert.match(c.message, /only "cert" and "key"/);
});

void test("wrong types are errors naming what was expected", () => {
  assert.match(oneIssue('[server]\nworkers = "4"', "server.workers", 2).message, /expected an integer from 0 to 64, got "4"/);
  assert.match(oneIssue("limits = 5", "limits", 1).message, /expected a table \(\[limits\]\), got 5/);
  assert.match(oneIssue('tls.watch = "yes"', "tls.watch", 1).message, /expected true or false, got "yes"/);
  assert.match(oneIssue('smtp.listen = "127.0.0.1:25"', "smtp.listen", 1).message, /expected an array of listen addresses/);
  assert.match(oneIssue("[local]\ndomains = [1]", "local.domains[0]", 2).message, /expected a domain name \(a string\), got 1/);
  assert.match(oneIssue("server.hostname = 1979-05-27", "server.hostname", 1).message, /got a date/);
  assert.match(oneIssue("spool.max_batch = 2.5", "spool.max_batch", 1).message, /expected an integer from 1 to 10000, got 2.5/);
  oneIssue('[tls]\ncertificates = ["a.pem"]', "tls.certificates[0]", 2);
  assert.match(oneIssue('[tls]\ncertificates = [{ cert = "a.pem" }]', "tls.certificates[0]", 2).message, /missing "key"/);
});

void test("out-of-range numbers: the documented format", () => {
  const src = ["# Wardmail", "", "[server]", 'hostname = "mx.example.org"', "", "[tls]", "watch = true", "", "", "", "[limits]", "max_recipients = 0"].join("\n");
  const issues = issuesOf(src);
  assert.equal(formatIssues("wardmail.toml", issues), "wardmail.toml:12: limits.max_recipients: expected an integer from 1 to 10000, got 0");
  oneIssue("[limits]\nmax_line_length = 511", "limits.max_line_length", 2);
  oneIssue("[limits]\nmax_message_size = 1073741825", "limits.max_message_size", 2);
  oneIssue("[server]\nworkers = 65", "server.workers", 2);
  oneIssue("[server]\nworkers = -1", "server.workers", 2);
  oneIssue("spool.max_batch = 0", "spool.max_batch", 1);
  // Boundaries are allowed.
  assert.equal(parse("[limits]\nmax_line_length = 512\nmax_commands = 10000000").limits.max_commands, 10000000);
});

void test("bad enum values are errors listing the allowed values", () => {
  const a = oneIssue('[protocol]\nbare_line_endings = "fix"', "protocol.bare_line_endings", 2);
  assert.equal(a.message, 'expected one of "reject", "normalize", got "fix"');
  oneIssue('[log]\nlevel = "verbose"', "log.level", 2);
  oneIssue('protocol.eight_bit_without_8bitmime = "Accept"', "protocol.eight_bit_without_8bitmime", 1);
  const t = oneIssue('[tls]\nmin_version = "TLSv1.1"', "tls.min_version", 2);
  assert.match(t.message, /below TLSv1\.2 are not allowed/);
  assert.equal(parse('tls.min_version = "TLSv1.3"').tls.minVersion, "TLSv1.3");
});

void test("tls.groups: DEFAULT is refused (CVE-2026-2673), unknown groups are errors, the post-quantum hybrid is first by default", () => {
  assert.equal(parse("").tls.groups.split(/[:/]/)[0], "X25519MLKEM768");
  for (const bad of ["DEFAULT", "X25519MLKEM768:DEFAULT", "default", "X25519/?DEFAULT", "*DEFAULT:X25519"]) {
    assert.match(oneIssue(`[tls]\ngroups = "${bad}"`, "tls.groups", 2).message, /must not contain "DEFAULT" \(CVE-2026-2673\)/, bad);
  }
  assert.match(oneIssue('[tls]\ngroups = "X25519:NOT-A-GROUP"', "tls.groups", 2).message, /groups OpenSSL knows/);
  assert.match(oneIssue('[tls]\ngroups = "X25519::P-256"', "tls.groups", 2).message, /group names separated/);
  assert.equal(parse('tls.groups = "X25519:?NOT-A-GROUP"').tls.groups, "X25519:?NOT-A-GROUP");
  assert.equal(parse('tls.groups = "P-256"').tls.groups, "P-256");
  assert.equal(parse("tls.mx_session_tickets = true").tls.mxSessionTickets, true);
});

void test("strings with their own syntax: hostname, accounts, ciphers, maildir", () => {
  assert.match(oneIssue('[server]\nhostname = "mx example.org"', "server.hostname", 2).message, /expected a domain name/);
  oneIssue('[server]\nuser = "bad user"', "server.user", 2);
  assert.match(oneIssue('[tls]\nciphers = "NOT-A-CIPHER"', "tls.ciphers", 2).message, /at least one usable cipher/);
  assert.match(oneIssue('[local]\nmaildir = "mail/%d"', "local.maildir", 2).message, /containing %n/);
  assert.match(oneIssue('[local]\nmaildir = "mail/%u/%n"', "local.maildir", 2).message, /unknown placeholder "%u"/);
  oneIssue('[server]\ndata_dir = ""', "server.data_dir", 2);
  assert.equal(parse('local.maildir = "/m/100%%/%d/%n"').local.maildir, "/m/100%%/%d/%n");
  assert.deepEqual(parse('server.user = "mail"\nserver.group = "1000"').server, { ...EXPECTED_DEFAULTS.server, user: "mail", group: "1000" });
});

void test("group without user is an error", () => {
  const a = oneIssue('[server]\ngroup = "mail"', "server.group", 2);
  assert.match(a.message, /server\.user/);
});

// ------------------------------------------------------------------ listeners

void test("a bad listen address is an error at its element's line", () => {
  const src = '[smtp]\nlisten = [\n  "127.0.0.1:25",\n  "mail.example.org:25",\n  "[::1]:0",\n]';
  const issues = issuesOf(src);
  assert.deepEqual(issues.map((i) => [i.key, i.line]), [["smtp.listen[1]", 4], ["smtp.listen[2]", 5]]);
  assert.match(issues[0]?.message ?? "", /IP address \(not a name\) and a port from 1 to 65535, got "mail\.example\.org:25"/);
  assert.match(oneIssue('submissions.listen = ["::1:465"]', "submissions.listen[0]", 1).message, /brackets/);
});

void test("duplicate listen addresses across sections are errors", () => {
  const src = '[smtp]\nlisten = ["127.0.0.1:25"]\n[submission]\nlisten = ["127.0.0.1:587",\n  "127.0.0.1:25"]';
  const a = oneIssue(src, "submission.listen[1]", 5);
  assert.match(a.message, /127\.0\.0\.1:25 is also used by smtp\.listen\[0\]/);
  // The same address written differently is still the same.
  oneIssue('smtp.listen = ["[::1]:25"]\nsubmissions.listen = ["[0:0::1]:25"]', "submissions.listen[0]", 2);
  // Colliding with a default is reported where the operator wrote it.
  const d = oneIssue('[submissions]\nlisten = ["127.0.0.1:2525"]', "submissions.listen[0]", 2);
  assert.match(d.message, /smtp\.listen\[0\] \(a default value\)/);
  const e = oneIssue('[smtp]\nlisten = ["127.0.0.1:2587"]', "smtp.listen[0]", 2);
  assert.match(e.message, /submission\.listen\[0\]/);
});

void test("a wildcard collides with its own family on the same port; duplicates within one list too", () => {
  const a = oneIssue('smtp.listen = ["0.0.0.0:25"]\nsubmission.listen = ["10.0.0.1:25"]', "submission.listen[0]", 2);
  assert.match(a.message, /collides with smtp\.listen\[0\] \(0\.0\.0\.0:25; a wildcard/);
  oneIssue('smtp.listen = ["[::]:25", "[::1]:25"]', "smtp.listen[1]", 1);
  assert.match(oneIssue('smtp.listen = ["127.0.0.1:25", "127.0.0.1:25"]', "smtp.listen[1]", 1).message, /listed twice/);
  assert.equal(parse('smtp.listen = ["0.0.0.0:25", "[::]:25"]').smtp.listen.length, 2);
});

// ------------------------------------------------------------------ local domains, mailboxes, aliases

const LOCAL = '[local]\ndomains = ["example.org"]\nmailboxes = ["alice@example.org", "bob@example.org"]\n[local.aliases]\n';

void test("a mailbox in a non-local domain is an error at its element", () => {
  const a = oneIssue('[local]\ndomains = ["example.org"]\nmailboxes = [\n  "alice@example.org",\n  "bob@example.net",\n]', "local.mailboxes[1]", 5);
  assert.match(a.message, /bob@example\.net is not in a local domain/);
  // Default mailboxes no longer fit once domains change: reported at [local], saying they are defaults.
  const issues = issuesOf('\n[local]\ndomains = ["example.org"]');
  assert.deepEqual(issues.map((i) => [i.key, i.line]), [["local.mailboxes[0]", 2], ["local.mailboxes[1]", 2]]);
  assert.match(issues[0]?.message ?? "", /a default value/);
});

void test("malformed and duplicate addresses are errors", () => {
  assert.match(oneIssue('local.mailboxes = ["postmaster"]', "local.mailboxes[0]", 1).message, /local@domain/);
  assert.match(oneIssue('local.mailboxes = ["postmaster@localhost", "Postmaster@LOCALHOST"]', "local.mailboxes[1]", 1).message, /listed twice/);
  oneIssue('local.domains = ["localhost", "example.test", "LocalHost."]', "local.domains[2]", 1);
  oneIssue(`${LOCAL}"team" = ["alice@example.org"]`, 'local.aliases.team', 5);
  oneIssue(`${LOCAL}"team@example.org" = ["alice"]`, 'local.aliases."team@example.org"[0]', 5);
});

void test("alias rules: local domain, not a mailbox, non-empty targets, local targets exist", () => {
  assert.match(oneIssue(`${LOCAL}"team@other.org" = ["alice@example.org"]`, 'local.aliases."team@other.org"', 5).message, /not in a local domain/);
  assert.match(oneIssue(`${LOCAL}"alice@example.org" = ["bob@example.org"]`, 'local.aliases."alice@example.org"', 5).message, /both an alias and a mailbox/);
  assert.match(oneIssue(`${LOCAL}"team@example.org" = []`, 'local.aliases."team@example.org"', 5).message, /non-empty array/);
  assert.match(oneIssue(`${LOCAL}"team@example.org" = "alice@example.org"`, 'local.aliases."team@example.org"', 5).message, /non-empty array/);
  const t = oneIssue(`${LOCAL}"team@example.org" = [\n  "alice@example.org",\n  "carol@example.org",\n]`, 'local.aliases."team@example.org"[1]', 7);
  assert.match(t.message, /carol@example\.org is in a local domain but is neither a mailbox/);
  assert.match(oneIssue(`${LOCAL}"a@example.org" = ["bob@example.org"]\n"A@example.org" = ["bob@example.org"]`, 'local.aliases."A@example.org"', 6).message, /defined twice/);
  assert.match(oneIssue('local.aliases = ["x"]', "local.aliases", 1).message, /expected a table/);
});

void test("alias cycles are errors at the first alias of the cycle", () => {
  const src = `${LOCAL}"a@example.org" = ["alice@example.org"]\n"b@example.org" = ["c@example.org"]\n"c@example.org" = ["d@example.org"]\n"d@example.org" = ["b@example.org", "bob@example.org"]\n`;
  const issue = oneIssue(src, 'local.aliases."b@example.org"', 6);
  assert.equal(issue.message, "alias cycle: b@example.org -> c@example.org -> d@example.org -> b@example.org; expected aliases to end at mailboxes or remote addresses");
  assert.match(oneIssue(`${LOCAL}"self@example.org" = ["self@example.org"]`, 'local.aliases."self@example.org"', 5).message, /self@example\.org -> self@example\.org/);
  // A chain that ends is fine, and so is a diamond.
  const ok = parse(`${LOCAL}"a@example.org" = ["b@example.org", "c@example.org"]\n"b@example.org" = ["c@example.org"]\n"c@example.org" = ["alice@example.org"]`);
  assert.deepEqual(ok.local.aliases["a@example.org"], ["b@example.org", "c@example.org"]);
});

void test("local.lmtp: TCP or unix socket per local domain; other domains, bad targets and duplicates are errors", () => {
  const c = parse(`${LOCAL.replace('domains = ["example.org"]', 'domains = ["example.org", "example.net", "v6.example"]')}[local.lmtp]\n"Example.ORG." = "unix:/run/dovecot/lmtp"\n"example.net" = "127.0.0.1:24"\n"v6.example" = "[::1]:2424"\n`);
  assert.deepEqual(c.local.lmtp, { "example.org": { path: "/run/dovecot/lmtp" }, "example.net": { host: "127.0.0.1", port: 24 }, "v6.example": { host: "::1", port: 2424 } });
  const head = `${LOCAL}[local.lmtp]\n`;
  assert.match(oneIssue(`${head}"other.org" = "127.0.0.1:24"`, 'local.lmtp."other.org"', 6).message, /other\.org is not a local domain; expected a domain listed in local\.domains/);
  assert.match(oneIssue(`${head}"example.org" = "lmtp.example:24"`, 'local.lmtp."example.org"', 6).message, /expected an LMTP server/);
  assert.match(oneIssue(`${head}"example.org" = "unix:run/lmtp"`, 'local.lmtp."example.org"', 6).message, /must be absolute/);
  assert.match(oneIssue(`${head}"example.org" = "unix:/${"x".repeat(120)}"`, 'local.lmtp."example.org"', 6).message, /at most 107 bytes/);
  assert.match(oneIssue(`${head}"example.org" = 24`, 'local.lmtp."example.org"', 6).message, /expected an LMTP server \(a string\), got 24/);
  assert.match(oneIssue(`${head}"bad domain" = "127.0.0.1:24"`, 'local.lmtp."bad domain"', 6).message, /expected a domain name/);
  assert.match(oneIssue(`${head}"example.org" = "127.0.0.1:24"\n"EXAMPLE.org" = "127.0.0.1:25"`, 'local.lmtp."EXAMPLE.org"', 7).message, /listed twice/);
  assert.match(oneIssue('local.lmtp = "127.0.0.1:24"', "local.lmtp", 1).message, /expected a table/);
});

// ------------------------------------------------------------------ syntax errors, collection, formatting

void test("a TOML syntax error comes out with its line", () => {
  const a = oneIssue('[server]\nhostname = "x"\nworkers = = 2\n', "", 3);
  assert.match(a.message, /^TOML syntax error at column \d+: /);
  oneIssue('[server]\nhostname = "unterminated\n', "", 2);
  oneIssue("[limits]\nmax_errors = 1\nmax_errors = 2\n", "", 3);
});

void test("all problems are collected, sorted by line, in one ConfigError", () => {
  const src = [
    '[server]',                                        // 1
    'hostname = "bad host"',                           // 2
    'group = "mail"',                                  // 3
    '[limits]',                                        // 4
    'max_recipients = 0',                              // 5
    'max_errorz = 3',                                  // 6
    '[log]',                                           // 7
    'level = "loud"',                                  // 8
    '[smtp]',                                          // 9
    'listen = ["127.0.0.1:2587"]',                     // 10
  ].join("\n");
  let error: unknown;
  try {
    parse(src);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.file, FILE);
  assert.deepEqual(error.issues.map((i) => [i.line, i.key]), [
    [2, "server.hostname"],
    [3, "server.group"],
    [5, "limits.max_recipients"],
    [6, "limits.max_errorz"],
    [8, "log.level"],
    [10, "smtp.listen[0]"],
  ]);
  const lines = error.message.split("\n");
  assert.equal(lines.length, 6);
  assert.ok(lines.every((l) => l.startsWith(`${FILE}:`)));
  assert.equal(lines[2], `${FILE}:5: limits.max_recipients: expected an integer from 1 to 10000, got 0`);
  assert.ok(Object.isFrozen(error.issues));
});

void test("formatIssues writes file:line: key: message, leaving out an empty key", () => {
  assert.equal(
    formatIssues("w.toml", [{ key: "", line: 0, message: "cannot read" }, { key: "a.b", line: 3, message: "bad" }]),
    "w.toml:0: cannot read\nw.toml:3: a.b: bad",
  );
  assert.equal(formatIssues("w.toml", []), "");
});
