/**
 * `wardmail audit server` against real servers on loopback, through the
 * real command (`node bin/wardmail.ts audit server ... --json`, exit codes
 * included):
 *
 * - Postfix 3.7 in Debian's defaults without TLS, as an MX (mynetworks
 *   empty, reject_unauth_destination): STARTTLS missing is high, no relay
 *   finding, exit 1.
 * - Postfix as an open relay for the prober (mynetworks 127.0.0.0/8,
 *   permit_mynetworks): relay.open critical, exit 1.
 * - Postfix with smtpd_forbid_bare_newline = no (3.7.11's default) and
 *   --send-to a mailbox it holds: the smuggling check reports the variants
 *   Postfix takes as the end of DATA, and the mailbox holds exactly one
 *   smuggled message for each variant reported as SMUGGLED (and none for the
 *   others): the report is what happened.
 * - Wardmail (the test helper's config: the embedded defaults on free
 *   ports): no high or critical finding, exit 0; with --send-to, no variant
 *   ends DATA and no smuggled message arrives.
 * - Postfix with SASL AUTH through a private Dovecot auth service and no
 *   TLS (smtpd_tls_auth_only = no, Dovecot's disable_plaintext_auth = no):
 *   auth.before-tls is critical, because "AUTH PLAIN" (no credential) gets
 *   334 in clear text; VRFY of an unqualified random name is refused as
 *   relaying there, which is not user enumeration.
 * - An unreachable port exits 3, a bad argument 2; hostile listeners in
 *   this process (silence, endless replies, a line without end) end within
 *   the timeout or the reply limits, exit 3.
 *
 * Exim is not here: installing exim4 removes Postfix from Debian machines.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { postfixMissing, startPostfix, type PostfixInstance } from "./peers/postfix.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { freePort } from "./peers/ports.ts";
import net from "node:net";

const SKIP = peerSkip(postfixMissing());

interface JsonReport {
  schema: number;
  target: string;
  grade: string;
  areas: Record<string, string>;
  findings: { id: string; severity: string; area: string; title: string; evidence: string; fix: string }[];
  checks: { id: string; ran: boolean; note?: string }[];
}

function audit(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, "audit", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`audit ${args.join(" ")} took more than ${timeoutMs} ms`));
    }, timeoutMs);
    c.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function auditJson(args: string[]): Promise<{ code: number | null; report: JsonReport; stderr: string }> {
  const r = await audit([...args, "--json", "--timeout", "5"]);
  let report: JsonReport;
  try {
    report = JSON.parse(r.stdout) as JsonReport;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

function ids(r: JsonReport): string[] {
  return r.findings.map((f) => f.id);
}

function severityOf(r: JsonReport, id: string): string | undefined {
  return r.findings.find((f) => f.id === id)?.severity;
}

describe("audit server against Postfix", { skip: SKIP }, () => {
  let plain: PostfixInstance | undefined;
  let relay: PostfixInstance | undefined;
  let bare: PostfixInstance | undefined;
  before(async () => {
    const results = await Promise.allSettled([
      // Debian's defaults as an MX: no TLS, relay only for mynetworks (empty here: the prober is "the internet").
      // myorigin example.test: "postmaster" alone is postmaster@example.test, a mailbox (for VRFY).
      startPostfix({ mode: "mailbox", mailboxes: ["postmaster@example.test"], extraMain: { myorigin: "example.test" } }),
      // An open relay for the prober: loopback is in mynetworks. It refuses unannounced pipelining (3.9's default).
      startPostfix({ mode: "discard", extraMain: { mynetworks: "127.0.0.0/8", smtpd_relay_restrictions: "permit_mynetworks, reject", smtpd_forbid_unauth_pipelining: "yes" } }),
      // Bare newlines allowed (3.7.11's default, written out), mail for audit@example.test kept.
      startPostfix({ mode: "mailbox", mailboxes: ["audit@example.test"], extraMain: { smtpd_forbid_bare_newline: "no" } }),
    ]);
    [plain, relay, bare] = results.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    for (const r of results) if (r.status === "rejected") throw r.reason;
  });
  after(async () => {
    await Promise.all([plain?.stop(), relay?.stop(), bare?.stop()]);
  });

  test("Debian defaults without TLS: STARTTLS missing is high, no relay, exit 1", async () => {
    assert.ok(plain);
    const { code, report } = await auditJson(["server", `127.0.0.1:${plain.port}`]);
    assert.equal(code, 1, JSON.stringify(report, null, 1));
    assert.equal(report.schema, 1);
    assert.equal(report.target, `smtp://127.0.0.1:${plain.port}`);
    assert.equal(severityOf(report, "tls.starttls.missing"), "high");
    assert.ok(!ids(report).some((i) => i.startsWith("relay.") && i !== "relay.summary"), ids(report).join(" "));
    assert.equal(report.findings.find((f) => f.id === "relay.summary")?.title, "relay battery: 10 forms, 0 accepted, 10 refused, 0 not tried");
    assert.equal(report.areas.transport, "D");
    assert.equal(report.areas.relay === "F", false);
    assert.equal(report.grade, "D");
    assert.deepEqual(report.checks.find((c) => c.id === "tls"), { id: "tls", ran: false, note: "no STARTTLS" });
    // Postfix's Debian banner names the software without a version.
    assert.equal(severityOf(report, "banner.software"), "info");
    // VRFY is on by default: 252 for postmaster, 550 for a random name.
    assert.equal(severityOf(report, "smtp.vrfy"), "medium");
    assert.match(report.findings.find((f) => f.id === "smtp.vrfy")?.evidence ?? "", /^VRFY postmaster: 252 .*; VRFY <random>: 550 /);
    // Postfix accepts MAIL before HELO unless smtpd_helo_required = yes.
    assert.equal(severityOf(report, "smtp.mail-before-ehlo"), "low");
    // 3.7's default smtpd_forbid_unauth_pipelining = no: MAIL sent with EHLO, before its reply, is taken;
    // an announced pipelined group gets one reply per command.
    assert.equal(severityOf(report, "smtp.pipelining.early"), "low");
    assert.match(report.findings.find((f) => f.id === "smtp.pipelining.early")?.evidence ?? "", /\| 250 (2\.1\.0 )?Ok$/);
    assert.equal(severityOf(report, "smtp.pipelining.desync"), undefined);
    for (const f of report.findings) for (const k of ["id", "severity", "area", "title", "evidence", "fix"] as const) assert.equal(typeof f[k], "string");
  });

  test("open relay for the prober: relay.open is critical, exit 1", async () => {
    assert.ok(relay);
    const { code, report } = await auditJson(["server", `127.0.0.1:${relay.port}`]);
    assert.equal(code, 1);
    assert.equal(severityOf(report, "relay.open"), "critical");
    assert.match(report.findings.find((f) => f.id === "relay.open")?.evidence ?? "", /RCPT TO:<wardmail-relay-test@example\.com> got 250/);
    assert.equal(report.areas.relay, "F");
    assert.equal(report.grade, "F");
    // smtpd_forbid_unauth_pipelining = yes: the early MAIL is refused, no pipelining finding.
    assert.equal(report.checks.find((c) => c.id === "pipelining")?.ran, true);
    assert.ok(!ids(report).some((i) => i.startsWith("smtp.pipelining.")), ids(report).join(" "));
    assert.match(report.findings.find((f) => f.id === "relay.summary")?.title ?? "", /^relay battery: 10 forms, ([1-9]|10) accepted, \d+ refused, 0 not tried$/);
    // Nothing was ever sent for delivery: the relay probes end with RSET, never DATA.
    assert.equal(await relay.queueCount(), 0);
    assert.doesNotMatch(await relay.readLog(), /\bqueued as\b|status=sent/);
  });

  test("smtpd_forbid_bare_newline = no: the variants Postfix takes as the end are reported, and they are the ones delivered twice", async () => {
    assert.ok(bare);
    const { code, report } = await auditJson(["server", `127.0.0.1:${bare.port}`, "--send-to", "audit@example.test"]);
    const smuggled = report.findings.filter((f) => f.id.startsWith("smuggling.") && f.id !== "smuggling.summary");
    const summary = report.findings.find((f) => f.id === "smuggling.summary");
    assert.ok(summary, JSON.stringify(report, null, 1));
    assert.ok(smuggled.length > 0, summary.evidence);
    assert.equal(code, 1);
    const reported = new Set(smuggled.filter((f) => f.severity === "high").map((f) => f.id.slice("smuggling.".length)));
    // Postfix reads a bare LF as a line end: these three must be among them.
    for (const v of ["lf-dot-lf", "lf-dot-crlf", "crlf-dot-lf"]) assert.ok(reported.has(v), `${v} not reported: ${summary.evidence}`);
    // A bare CR is not a line end for Postfix.
    assert.ok(!reported.has("cr-dot-cr"), summary.evidence);
    const marker = /marker (wm-[0-9a-f]{10})/.exec(summary.evidence)?.[1];
    assert.ok(marker);
    // What arrived: one "outer" message per variant, and a SMUGGLED one exactly for the reported ones.
    const sent = summary.title.match(/(\d+) variants sent/)?.[1];
    const expected = Number(sent) + reported.size;
    const mail = await bare.waitForMailbox("audit@example.test", expected, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const all = (await bare.mailbox("audit@example.test")).map((b) => b.toString("latin1"));
    assert.equal(all.length, expected, `${mail.length} messages`);
    const delivered = new Set<string>();
    for (const m of all) {
      // The header of the stored message only: a message that was not split carries the smuggled text in its body.
      const header = m.slice(0, m.search(/\r?\n\r?\n/));
      const s = new RegExp(`^Subject: wardmail audit smuggling ${marker} (\\S+) SMUGGLED\\r?$`, "m").exec(header);
      if (s !== null) delivered.add(s[1] as string);
    }
    assert.deepEqual([...delivered].sort(), [...reported].sort());
  });
});

const SASL_SKIP = peerSkip(postfixMissing(), binaryMissing("dovecot", ["--version"], "dovecot-core"));

describe("audit server against Postfix with SASL AUTH in clear text", { skip: SASL_SKIP }, () => {
  let base = "";
  let dovecot: ChildProcess | undefined;
  let pf: PostfixInstance | undefined;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), "wardmail-audit-sasl-"));
    await chmod(base, 0o755);
    for (const d of ["run", "state"]) await mkdir(join(base, d));
    await writeFile(join(base, "users"), "alice@example.test:{PLAIN}a long password\n");
    const conf = join(base, "dovecot.conf");
    await writeFile(
      conf,
      [
        `base_dir = ${base}/run`,
        `state_dir = ${base}/state`,
        `log_path = ${base}/dovecot.log`,
        "protocols =",
        "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        `passdb {\n  driver = passwd-file\n  args = ${base}/users\n}`,
        "userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=/nonexistent\n}",
        "service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}",
        "",
      ].join("\n"),
    );
    dovecot = spawn("dovecot", ["-F", "-c", conf], { stdio: "ignore" });
    const socket = join(base, "run", "auth-postfix");
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(socket), "Dovecot's auth socket did not appear");
    pf = await startPostfix({
      mode: "mailbox",
      mailboxes: ["alice@example.test"],
      extraMain: { smtpd_sasl_auth_enable: "yes", smtpd_sasl_type: "dovecot", smtpd_sasl_path: socket },
    });
  });
  after(async () => {
    await pf?.stop();
    const p = dovecot;
    if (p !== undefined && p.exitCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (p.exitCode === null) p.kill("SIGKILL");
    }
    if (base !== "") await rm(base, { recursive: true, force: true });
  });

  test("AUTH offered and accepted before TLS: critical; AUTH on the MX port: low; no credential was sent", async () => {
    assert.ok(pf);
    const { code, report } = await auditJson(["server", `127.0.0.1:${pf.port}`]);
    assert.equal(code, 1);
    assert.equal(severityOf(report, "auth.before-tls"), "critical");
    assert.match(report.findings.find((f) => f.id === "auth.before-tls")?.evidence ?? "", /offers AUTH PLAIN LOGIN; "AUTH PLAIN" before TLS got 334/);
    assert.equal(severityOf(report, "auth.port25"), "low");
    assert.equal(report.areas.authentication, "F");
    // "VRFY <random>" got "554 5.7.1 Relay access denied": not an answer about users.
    assert.ok(!ids(report).includes("smtp.vrfy"), ids(report).join(" "));
    // The AUTH was cancelled with "*": Postfix logs an aborted authentication, never a failed one.
    const log = await pf.waitForLog(/SASL PLAIN authentication aborted/);
    assert.ok(log);
    assert.doesNotMatch(await pf.readLog(), /authentication failed/);
  });
});

describe("audit server against Wardmail", () => {
  let w: Wardmail | undefined;
  let dir = "";
  before(async () => {
    w = await startWardmail({ workers: 1, mailboxes: ["audit@example.test", "postmaster@example.test"] });
    dir = await mkdtemp(join(tmpdir(), "wardmail-audit-"));
  });
  after(async () => {
    await w?.stop();
    await w?.cleanup();
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  test("the MX on its defaults: no high or critical finding, exit 0; the HTML page is written", async () => {
    assert.ok(w);
    const html = join(dir, "report.html");
    const { code, report } = await auditJson(["server", `127.0.0.1:${w.smtpPort}`, "--html", html]);
    assert.equal(code, 0, JSON.stringify(report, null, 1));
    assert.deepEqual(
      report.findings.filter((f) => f.severity === "critical" || f.severity === "high"),
      [],
    );
    // Pipelined groups get one reply per command. The only relay finding above info may be that a
    // command sent with EHLO, before its reply, is taken (Wardmail does not enforce synchronisation).
    assert.equal(severityOf(report, "smtp.pipelining.desync"), undefined);
    assert.deepEqual(report.findings.filter((f) => f.area === "relay" && f.severity !== "info" && f.id !== "smtp.pipelining.early").map((f) => f.id), []);
    for (const c of ["survey", "starttls-injection", "mail-before-ehlo", "pipelining", "relay", "tls"]) assert.equal(report.checks.find((x) => x.id === c)?.ran, true, c);
    // What the TLS survey saw: TLS 1.2 and 1.3 only, the post-quantum hybrid, no tickets on the MX.
    const summary = report.findings.find((f) => f.id === "tls.summary")?.evidence ?? "";
    assert.match(summary, /TLSv1\.3 .* group X25519MLKEM768; versions accepted: TLSv1\.2, TLSv1\.3;/);
    // Every relay form was tried and refused.
    assert.equal(report.findings.find((f) => f.id === "relay.summary")?.title, "relay battery: 10 forms, 0 accepted, 10 refused, 0 not tried");
    for (const id of ["tls.version.tls10", "tls.version.tls11", "tls.tickets.port25", "tls.pq.missing", "tls.starttls.injection", "relay.open", "tls.cert.name"]) {
      assert.ok(!ids(report).includes(id), id);
    }
    const page = await readFile(html, "utf8");
    assert.match(page, /^<!doctype html>/);
    assert.ok(page.includes(`smtp://127.0.0.1:${w.smtpPort}`));
    assert.doesNotMatch(page, /<script|src=|href=/i);
  });

  test("smuggling with --send-to: no variant ends DATA, nothing smuggled arrives", async () => {
    assert.ok(w);
    const { code, report } = await auditJson(["server", `127.0.0.1:${w.smtpPort}`, "--send-to", "audit@example.test"]);
    assert.equal(code, 0);
    const summary = report.findings.find((f) => f.id === "smuggling.summary");
    assert.ok(summary);
    assert.match(summary.title, /^SMTP smuggling: 14 variants sent to audit@example\.test, 0 taken as the end of DATA$/);
    assert.doesNotMatch(summary.evidence, /not tested/);
    assert.ok(!report.findings.some((f) => f.id.startsWith("smuggling.") && f.id !== "smuggling.summary"));
    // Bare CR/LF are refused by default: whatever arrived holds no smuggled message.
    await new Promise((r) => setTimeout(r, 500));
    for (const f of await w.maildir("audit@example.test")) assert.doesNotMatch(await readFile(f, "latin1"), /SMUGGLED/);
  });

  test("submission (587 STARTTLS, 465 implicit TLS): AUTH only after TLS, no relay without AUTH; a self-signed certificate is high for mail clients", async () => {
    assert.ok(w);
    for (const args of [["server", `127.0.0.1:${w.submissionPort}`, "--submission"], ["server", `127.0.0.1:${w.submissionsPort}`, "--submission", "--implicit-tls"]]) {
      const { code, report } = await auditJson(args);
      const ctx = JSON.stringify(report, null, 1);
      assert.equal(report.target, `${args.includes("--implicit-tls") ? "smtps" : "smtp"}://127.0.0.1:${args[1]?.split(":")[1]}`);
      for (const c of ["survey", "mail-before-ehlo", "relay", "tls"]) assert.equal(report.checks.find((x) => x.id === c)?.ran, true, `${c}: ${ctx}`);
      assert.deepEqual(
        report.findings.filter((f) => f.severity === "critical" || f.severity === "high").map((f) => f.id),
        ["tls.cert.self-signed"],
        ctx,
      );
      assert.equal(code, 1);
      for (const id of ["auth.before-tls", "auth.missing", "relay.open", "tls.starttls.missing"]) assert.ok(!ids(report).includes(id), `${id}: ${ctx}`);
      assert.equal(report.areas.authentication, "A");
      assert.equal(report.areas.relay, "A");
      // Without AUTH, MAIL itself is refused on submission.
      assert.match(report.findings.find((f) => f.id === "relay.summary")?.evidence ?? "", /^plain: MAIL 530; percent: MAIL 530;/);
    }
  });

  test("the text report: grades, findings with evidence and fix, no colour when not on a terminal", async () => {
    assert.ok(w);
    const r = await audit(["server", `127.0.0.1:${w.smtpPort}`, "--timeout", "5"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // relay/abuse B: Wardmail takes a command pipelined with EHLO before its reply (smtp.pipelining.early, low).
    assert.match(r.stdout, /^Wardmail audit of smtp:\/\/127\.0\.0\.1:\d+\noverall grade: [A-C]\n {2}transport \(TLS\) +[A-C]\n {2}relay\/abuse +[AB]\n {2}authentication +A\n/);
    assert.match(r.stdout, /evidence: /);
    assert.doesNotMatch(r.stdout, /\x1b\[/);
    assert.equal(r.stderr, "");
  });
});

describe("audit server: exit codes without a server", () => {
  test("a closed port is unreachable: exit 3", async () => {
    const port = await freePort();
    const r = await audit(["server", `127.0.0.1:${port}`, "--timeout", "2"]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /unreachable: 127\.0\.0\.1:\d+: connect to .*ECONNREFUSED/);
    assert.equal(r.stdout, "");
  });

  /** A hostile server on loopback: `onConnect` decides what it does with each connection. */
  async function hostile(onConnect: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const srv = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
      onConnect(s);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    return {
      port,
      close: () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          srv.close(() => r());
        }),
    };
  }

  test("hostile servers: silence, an endless reply, a flood of bytes: each ends within its bound with exit 3", async () => {
    const cases: { name: string; on: (s: net.Socket) => void; re: RegExp; maxMs: number }[] = [
      { name: "no greeting", on: () => undefined, re: /no reply within 2000 ms/, maxMs: 8000 },
      {
        name: "endless multi-line greeting",
        on: (s) => {
          const tick = setInterval(() => (s.destroyed ? clearInterval(tick) : s.write("220-more\r\n".repeat(50))), 5);
        },
        re: /too many lines/,
        maxMs: 8000,
      },
      {
        name: "a line without end",
        on: (s) => {
          const tick = setInterval(() => (s.destroyed ? clearInterval(tick) : s.write("220 " + "x".repeat(4096))), 5);
        },
        re: /reply line too long/,
        maxMs: 8000,
      },
      {
        name: "greeting, then silence after EHLO",
        on: (s) => void s.write("220 mx.hostile.test ESMTP\r\n"),
        re: /no reply within 2000 ms/,
        maxMs: 8000,
      },
    ];
    for (const c of cases) {
      const h = await hostile(c.on);
      try {
        const t0 = Date.now();
        const r = await audit(["server", `127.0.0.1:${h.port}`, "--timeout", "2"]);
        const ms = Date.now() - t0;
        assert.equal(r.code, 3, `${c.name}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, c.re, c.name);
        assert.ok(ms < c.maxMs, `${c.name}: took ${ms} ms`);
      } finally {
        await h.close();
      }
    }
  });

  test("usage errors: exit 2", async () => {
    for (const args of [["server"], ["server", "127.0.0.1:99999"], ["server", "a b"], ["server", "127.0.0.1", "--timeout", "0"], ["server", "127.0.0.1", "--send-to", "nobody"], ["nothing"]]) {
      const r = await audit(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    }
    const help = await audit(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: wardmail audit server HOST\[:PORT\]/);
  });
});
