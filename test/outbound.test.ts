/**
 * Outbound delivery end to end with real, independent peers: alice submits
 * over implicit TLS (swaks, or a raw client for REQUIRETLS); Wardmail finds
 * the MX in a Knot DNS server on loopback, signs with the keys that
 * `wardmail dkim keygen` made, and delivers to real Postfix instances that
 * store the mail in Maildirs; dkimpy checks both DKIM signatures against the
 * records Knot publishes; bounces come back to alice as DSNs (read with
 * src/outbound/dsn-parse.ts); MTA-STS policies are fetched over HTTPS from a
 * server on 127.0.0.7:443; TLS-RPT counts are read from <dataDir>/tlsrpt.sqlite.
 *
 * One Wardmail, one knotd. Every MX is on the same TCP port P
 * (outbound.port applies to all destinations) but on its own loopback
 * address:
 *   peer.test      mx 127.0.0.1  Postfix, STARTTLS (test CA cert for mx.peer.test): bob@, rt@
 *   down.test      mx 127.0.0.2  nothing at first; the retry test starts Postfix's smtp-sink there
 *   notls.test     mx 127.0.0.3  Postfix without STARTTLS; outbound.tls_policy "encrypt"
 *   nullmx.test    MX 0 .        (RFC 7505)
 *   sts.test       mx 127.0.0.5  Postfix, cert for mx.sts.test; MTA-STS enforce
 *   stsbad.test    mx 127.0.0.6  Postfix, cert for another name (same test CA); MTA-STS enforce
 *   stsfetch.test  mx 127.0.0.1  (the peer.test Postfix, gus@); MTA-STS TXT record, policy 404
 *   example.test   ours: the DKIM key records
 * The server trusts the test CA through NODE_EXTRA_CA_CERTS (the MX check
 * and the policy fetch use Node's default CA set). The policy hosts
 * mta-sts.<domain> are resolved through Wardmail's own resolver (Knot
 * publishes them at 127.0.0.7) and fetched on port 443, where the test's
 * HTTPS server listens (root: port 443).
 *
 * Every test sends its own message (a unique token in the Subject) to its
 * own recipient, so the tests do not see each other's mail; they run in
 * file order.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { exec, type ExecResult } from "./peers/exec.ts";
import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AccountStore } from "../src/accounts/index.ts";
import { QueueAdmin } from "../src/queue/index.ts";
import { parseDsn, type ParsedDsn } from "../src/outbound/dsn-parse.ts";
import { CertFactory, type Issued } from "../src/outbound/mta-sts-testing.ts";
import { reportJson, TlsRptStore, utcDay } from "../src/outbound/tlsrpt.ts";
import { conformanceFile } from "./helpers/conformance.ts";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { knotMissing, startKnot, txtRdata, zoneText, type Knot } from "./peers/knot.ts";
import { freePort, waitForPort } from "./peers/ports.ts";
import { postfixMissing, SMTP_SINK_BIN as SMTP_SINK, startPostfix, type PostfixInstance, type PostfixOptions } from "./peers/postfix.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { pythonMissing } from "./helpers/dkim.ts";
import { loggedIn, logLines, mailWith, queueList, swaks, swaksReply, type QueueSummary } from "./peers/submission.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-dkim lives (not a pyenv shim)
const ALICE = "alice@example.test";
const ALICE_PW = "alice-outbound-pw-1";
const SELECTOR = "s1";
const POLICY_IP = "127.0.0.7";
const POLICY_HOSTS = ["mta-sts.sts.test", "mta-sts.stsbad.test", "mta-sts.stsfetch.test"];

const skip = peerSkip(
  knotMissing(),
  postfixMissing(),
  binaryMissing("swaks", ["--version"], "swaks"),
  binaryMissing(SMTP_SINK, ["-h"], "postfix"),
  binaryMissing("openssl", ["version"], "openssl"),
  pythonMissing("dkim, dns.resolver", "python3-dkim"),
);

// ---------------------------------------------------------------- state

let work = "";
let certs: CertFactory | undefined;
let knot: Knot | undefined;
let w: Wardmail | undefined;
let port = 0;
let policyServer: https.Server | undefined;
const policyHits = new Map<string, number>();
const peers: Record<"peer" | "notls" | "sts" | "stsbad", PostfixInstance | undefined> = { peer: undefined, notls: undefined, sts: undefined, stsbad: undefined };
/** The DSN of the REQUIRETLS-to-MTA-STS test, for the test after it. */
let requireTlsStsDsn: ParsedDsn | undefined;
/** Postfix's smtp-sink, started on 127.0.0.2 by the retry test. */
let sink: ChildProcess | undefined;
let sinkDir = "";

function need<T>(v: T | undefined, what: string): T {
  assert.ok(v !== undefined, `${what} not started`);
  return v;
}

const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2, 10)}`;

// ---------------------------------------------------------------- helpers

/** A tool with stdin input; `out` has stdout and stderr. */
const pipe = (cmd: string, args: string[], input: string | Buffer, timeoutMs = 20_000): Promise<ExecResult> => exec(cmd, args, { input, timeoutMs });

/** Runs cmd with input on stdin; killed (by its PID) after timeoutMs. */

/** Submits a message as alice over implicit TLS with swaks; asserts the final 250. */
async function submit(to: string, subject: string): Promise<void> {
  const s = need(w, "wardmail");
  const r = await swaks([
    "--server", "127.0.0.1", "--port", String(s.submissionsPort), "--tlsc",
    "-a", "PLAIN", "-au", ALICE, "-ap", ALICE_PW,
    "--from", ALICE, "--to", to,
    "--header", `Subject: ${subject}`,
    "--body", `Test body for ${subject}.\nSecond line.`,
  ]);
  const end = swaksReply(r.out, ".");
  assert.equal(r.code, 0, `swaks failed:\n${r.out}`);
  assert.equal(end?.code, 250, `end of data not accepted:\n${r.out}`);
}

/** Submits a message as alice over implicit TLS with MAIL FROM ... RET=FULL REQUIRETLS (raw client: swaks has no such option). */
async function submitRequireTls(to: string, subject: string): Promise<void> {
  const s = need(w, "wardmail");
  const sess = await loggedIn(s.submissionsPort, ALICE, ALICE_PW, { tls: "implicit" });
  try {
    assert.ok(sess.ehlo.lines.includes("REQUIRETLS"), `no REQUIRETLS in EHLO: ${sess.ehlo.raw}`);
    // RET=FULL asks for the whole message back in a bounce; REQUIRETLS overrides it (RFC 8689 §5).
    const mail = await sess.wire.command(`MAIL FROM:<${ALICE}> RET=FULL REQUIRETLS`);
    assert.equal(mail.code, 250, mail.raw);
    const rcpt = await sess.wire.command(`RCPT TO:<${to}>`);
    assert.equal(rcpt.code, 250, rcpt.raw);
    const data = await sess.wire.command("DATA");
    assert.equal(data.code, 354, data.raw);
    const body = [`From: <${ALICE}>`, `To: <${to}>`, `Subject: ${subject}`, `Message-ID: <${subject}@example.test>`, `Date: ${new Date().toUTCString()}`, "", "Secret.", "."].join("\r\n");
    const end = await sess.wire.command(body, 10_000);
    assert.equal(end.code, 250, end.raw);
    await sess.wire.command("QUIT").catch(() => undefined);
  } finally {
    sess.wire.close();
  }
}

/** The header fields of a message, unfolded, in order, as [name, value]. */
function headerFields(raw: Buffer): [string, string][] {
  const text = raw.toString("latin1").replace(/\r\n/g, "\n");
  const end = text.indexOf("\n\n");
  const head = end < 0 ? text : text.slice(0, end);
  return head
    .split(/\n(?![ \t])/)
    .map((f) => f.replace(/\n[ \t]+/g, " "))
    .map((f): [string, string] => [f.slice(0, f.indexOf(":")).trim(), f.slice(f.indexOf(":") + 1).trim()]);
}

/** A DKIM-Signature's tag value. */
function dkimTag(sig: string, tag: string): string | undefined {
  for (const part of sig.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === tag) return part.slice(eq + 1).replace(/\s+/g, "");
  }
  return undefined;
}

/** dkimpy verifies every DKIM-Signature of msg, keys from our Knot; one line "IDX ok|fail" each. */
async function dkimpyVerify(msg: Buffer): Promise<{ results: string[]; out: string }> {
  const code = [
    "import sys, dkim, dns.resolver",
    "r = dns.resolver.Resolver(configure=False)",
    "r.nameservers = ['127.0.0.1']",
    "r.port = int(sys.argv[1])",
    "r.lifetime = 5",
    "def txt(name, timeout=5):",
    "    name = name.decode() if isinstance(name, bytes) else name",
    "    try:",
    "        ans = r.resolve(name, 'TXT')",
    "    except Exception as e:",
    "        print('dns error', name, e, file=sys.stderr)",
    "        return None",
    "    for rr in ans:",
    "        return b''.join(rr.strings)",
    "    return None",
    "msg = sys.stdin.buffer.read()",
    "n = sum(1 for k, v in dkim.DKIM(msg).headers if k.lower() == b'dkim-signature')",
    "for i in range(n):",
    "    try:",
    "        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=txt)",
    "    except dkim.DKIMException as e:",
    "        print(i, 'error', e, file=sys.stderr)",
    "        ok = False",
    "    print(i, 'ok' if ok else 'fail')",
  ].join("\n");
  const r = await pipe(PYTHON, ["-c", code, String(need(knot, "knot").port)], msg);
  assert.equal(r.code, 0, `dkimpy crashed: ${r.out}`);
  return { results: r.out.split("\n").filter((l) => /^\d+ (ok|fail)$/.test(l)), out: r.out };
}

/** The DSN in alice's Maildir that mentions `needle` (a token or a recipient), parsed. */
async function dsnWith(needle: string, timeoutMs = 10_000): Promise<{ raw: string; dsn: ParsedDsn }> {
  const raw = await mailWith(need(w, "wardmail"), ALICE, needle, timeoutMs);
  return { raw, dsn: parseDsn(Buffer.from(raw, "latin1")) };
}

type Entry = QueueSummary & { lastError?: string; attempts?: number };

/**
 * Polls the queue (QueueAdmin in this process: cheaper than a CLI run per
 * poll) until a message to rcpt satisfies ok; then returns what `wardmail
 * queue list --json` says about it, which must satisfy ok too.
 */
async function queueEntry(rcpt: string, ok: (e: Entry) => boolean, timeoutMs = 10_000): Promise<Entry> {
  const s = need(w, "wardmail");
  const deadline = Date.now() + timeoutMs;
  let last: unknown = [];
  for (;;) {
    const admin = QueueAdmin.open(s.dataDir);
    let found = false;
    try {
      const list = admin.list();
      last = list.map((e) => ({ id: e.id, state: e.state, to: e.recipients.map((r) => r.address), lastError: e.lastError }));
      found = list.some((e) => e.recipients.some((r) => r.address === rcpt) && ok({ id: e.id, state: e.state, from: e.envelope.mailFrom, to: e.recipients.map((r) => r.address), ...(e.lastError !== undefined ? { lastError: e.lastError } : {}), attempts: e.attempts }));
    } finally {
      admin.close();
    }
    if (found) {
      const e = ((await queueList(s)) as Entry[]).find((x) => x.to.includes(rcpt) && ok(x));
      if (e) return e;
    }
    if (Date.now() > deadline) assert.fail(`no queue entry for ${rcpt} as expected within ${timeoutMs} ms: ${JSON.stringify(last)}\n${s.output().slice(-3000)}`);
    await sleep(100);
  }
}

/**
 * Removes the messages to rcpt from the queue (what `wardmail queue delete`
 * does), so that their retries every 2 s stop loading the machine; their
 * TLS-RPT counts stay. Checked by listing again, at most 50 rounds.
 */
async function dropFromQueue(rcpt: string): Promise<void> {
  const dataDir = need(w, "wardmail").dataDir;
  for (let i = 0; i < 50; i++) {
    const admin = QueueAdmin.open(dataDir);
    try {
      const left = admin.list().filter((x) => x.recipients.some((r) => r.address === rcpt));
      if (left.length === 0) return;
      for (const e of left) admin.delete(e.id);
    } finally {
      admin.close();
    }
    await sleep(100);
  }
  assert.fail(`could not delete the messages to ${rcpt} from the queue`);
}

/** The "outbound session" log lines for an MX host. */
function sessions(mx: string): Record<string, unknown>[] {
  return logLines(need(w, "wardmail").output(), "outbound session").filter((l) => l.mx === mx);
}

/**
 * Waits for a session to mx that ended without an error: its line is logged
 * when the session closes, which can be after the peer has the message.
 */
async function okSession(mx: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = sessions(mx).find((l) => l.error === undefined);
    if (ok) return ok;
    if (Date.now() > deadline) assert.fail(`no error-free outbound session to ${mx} within ${timeoutMs} ms: ${JSON.stringify(sessions(mx))}\n${need(w, "wardmail").output().slice(-3000)}`);
    await sleep(100);
  }
}

/** Waits until the server has logged at least n outbound sessions to mx. */
async function waitSessions(mx: string, n: number, timeoutMs = 10_000): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = sessions(mx);
    if (got.length >= n) return got;
    if (Date.now() > deadline) assert.fail(`fewer than ${n} outbound sessions to ${mx} within ${timeoutMs} ms\n${need(w, "wardmail").output().slice(-3000)}`);
    await sleep(100);
  }
}

/** An HTTPS server for the MTA-STS policy hosts on POLICY_IP:443 (certificate from the test CA). */
async function startPolicyServer(cert: Issued, policies: Record<string, string>): Promise<https.Server> {
  const server = https.createServer({ key: cert.key, cert: cert.chain }, (req, res) => {
    const host = (req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
    policyHits.set(host, (policyHits.get(host) ?? 0) + 1);
    const body = req.url === "/.well-known/mta-sts.txt" ? policies[host] : undefined;
    if (body === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) }).end(body);
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => reject(new Error(`cannot listen on ${POLICY_IP}:443 for the MTA-STS policy server (needs root and a free port): ${e.message}`));
    server.once("error", fail);
    server.listen(443, POLICY_IP, () => {
      server.removeListener("error", fail);
      resolve();
    });
  });
  return server;
}

/** Makes the DKIM keys with the real CLI (its own data dir) and returns the printed TXT lines. */
async function keygen(dir: string): Promise<{ dataDir: string; lines: string[] }> {
  const dataDir = join(dir, "keygen-data");
  const config = join(dir, "keygen.toml");
  await writeFile(config, `[server]\ndata_dir = ${JSON.stringify(dataDir)}\n`);
  const r = await pipe(process.execPath, [BIN, "dkim", "keygen", "--domain", "example.test", "--selector", SELECTOR, "--config", config], "", 30_000);
  assert.equal(r.code, 0, `wardmail dkim keygen failed: ${r.out}`);
  const lines = r.out.split("\n").filter((l) => /^\S+\._domainkey\.example\.test\.\s+IN\s+TXT\s+"/.test(l));
  assert.equal(lines.length, 2, `keygen printed ${lines.length} TXT records:\n${r.out}`);
  return { dataDir, lines };
}

// ---------------------------------------------------------------- setup

before(async () => {
  if (skip !== false) return;
  work = await mkdtemp(join(tmpdir(), "wardmail-outbound-"));
  certs = await CertFactory.create();
  const f = certs;
  const caCert = await f.caCert("Wardmail outbound test CA");
  const caPath = join(work, "ca.pem");
  await writeFile(caPath, caCert.cert);
  port = await freePort();

  // Everything that does not wait for something else starts at once (2 cores: Postfix start-up dominates).
  const leaf = (name: string): Promise<Issued> => f.make({ names: [name], issuer: caCert });
  const leaves = Promise.all([leaf("mx.peer.test"), leaf("mx.sts.test"), leaf("mx.elsewhere.test")]);
  const keys = keygen(work);
  const mx = (ip: string, extra: string[] = []): string[] => ["@ MX 10 mx", `mx A ${ip}`, ...extra];
  const stsTxt = `_mta-sts TXT ${txtRdata("v=STSv1; id=1")}`;
  const knotUp = keys.then(async (k) => {
    knot = await startKnot({
      zones: {
        "example.test": zoneText("example.test", [...k.lines]),
        "peer.test": zoneText("peer.test", mx("127.0.0.1")),
        "down.test": zoneText("down.test", mx("127.0.0.2")),
        "notls.test": zoneText("notls.test", mx("127.0.0.3")),
        "nullmx.test": zoneText("nullmx.test", ["@ MX 0 ."]),
        "sts.test": zoneText("sts.test", mx("127.0.0.5", [stsTxt, `mta-sts A ${POLICY_IP}`])),
        "stsbad.test": zoneText("stsbad.test", mx("127.0.0.6", [stsTxt, `mta-sts A ${POLICY_IP}`])),
        "stsfetch.test": zoneText("stsfetch.test", mx("127.0.0.1", [stsTxt, `mta-sts A ${POLICY_IP}`])),
      },
    });
    return knot;
  });
  const tlsOf = (c: Issued): PostfixOptions["tls"] => ({ certFile: c.certPath, keyFile: c.keyPath });
  const policy = (mxName: string): string => `version: STSv1\nmode: enforce\nmx: ${mxName}\nmax_age: 86400\n`;
  const postfix = (key: keyof typeof peers, o: PostfixOptions): Promise<void> =>
    startPostfix({ ...o, port }).then((p) => {
      peers[key] = p;
    });
  const all = await Promise.allSettled([
    leaves.then(([peerCert, stsCert, wrongCert]) =>
      Promise.all([
        postfix("peer", { mode: "mailbox", host: "127.0.0.1", mailboxes: ["bob@peer.test", "rt@peer.test", "gus@stsfetch.test"], tls: tlsOf(peerCert) }),
        postfix("notls", { mode: "mailbox", host: "127.0.0.3", mailboxes: ["dan@notls.test"] }),
        postfix("sts", { mode: "mailbox", host: "127.0.0.5", mailboxes: ["eve@sts.test", "rt@sts.test"], tls: tlsOf(stsCert) }),
        postfix("stsbad", { mode: "mailbox", host: "127.0.0.6", mailboxes: ["fay@stsbad.test"], tls: tlsOf(wrongCert) }),
      ]),
    ),
    f.make({ names: POLICY_HOSTS, issuer: caCert }).then(async (c) => {
      policyServer = await startPolicyServer(c, { "mta-sts.sts.test": policy("mx.sts.test"), "mta-sts.stsbad.test": policy("mx.stsbad.test") });
    }),
    knotUp.then(async (k) => {
      w = await startWardmail({
        domains: ["example.test"],
        mailboxes: ["postmaster@example.test"],
        checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${k.port}"]\ntimeout = 500\nattempts = 2\n`,
        extra: ["[outbound]", `port = ${port}`, "[outbound.tls_policy]", '"notls.test" = "encrypt"', "[queue]", "retry_min = 1", "retry_max = 2", ""].join("\n"),
        env: {
          NODE_EXTRA_CA_CERTS: caPath,
        },
      });
      // The keys go where the server looks for them, before anything is sent (it reads them at its first signature).
      await cp(join((await keys).dataDir, "dkim"), join(w.dataDir, "dkim"), { recursive: true });
      const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test"] });
      try {
        await st.addAccount(ALICE, ALICE_PW);
      } finally {
        st.close();
      }
    }),
  ]);
  for (const r of all) if (r.status === "rejected") throw r.reason;
});

after(async () => {
  if (sink !== undefined && sink.exitCode === null) sink.kill("SIGKILL");
  await Promise.allSettled([
    w?.stop().then(() => w?.cleanup()),
    ...Object.values(peers).map((p) => p?.stop()),
    knot?.stop(),
    policyServer !== undefined
      ? new Promise<void>((resolve) => {
          policyServer?.closeAllConnections();
          policyServer?.close(() => resolve());
        })
      : undefined,
  ]);
  await certs?.cleanup();
  for (const d of [work, sinkDir]) if (d !== "") await rm(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

describe("outbound delivery to real MX hosts", { skip }, () => {
  test("a submitted message reaches the peer's Postfix over STARTTLS with RSA and Ed25519 DKIM signatures that dkimpy verifies", async () => {
    const peer = need(peers.peer, "peer postfix");
    const subject = token("dkim");
    await submit("bob@peer.test", subject);

    const stored = (await peer.waitForMailbox("bob@peer.test", 1, 15_000)).find((m) => m.toString("latin1").includes(subject));
    assert.ok(stored, `not delivered to bob@peer.test\n${need(w, "wardmail").output().slice(-3000)}\n${(await peer.readLog()).slice(-3000)}`);

    // Postfix saw TLS from Wardmail (smtpd_tls_loglevel 1).
    const log = await peer.readLog();
    assert.match(log, /TLS connection established from \S+\[127\.0\.0\.1\]: TLSv1\.[23] /, log.slice(-3000));
    assert.match(log, /to=<bob@peer\.test>, relay=virtual.*status=sent/);

    // Two signatures, RSA first, d=example.test, the keygen selectors.
    const sigs = headerFields(stored).filter(([n]) => n.toLowerCase() === "dkim-signature").map(([, v]) => v);
    assert.equal(sigs.length, 2, `expected two DKIM-Signature fields:\n${stored.toString("latin1").slice(0, 3000)}`);
    assert.deepEqual(sigs.map((s) => dkimTag(s, "a")), ["rsa-sha256", "ed25519-sha256"]);
    assert.deepEqual(sigs.map((s) => dkimTag(s, "d")), ["example.test", "example.test"]);
    assert.deepEqual(sigs.map((s) => dkimTag(s, "s")), [`${SELECTOR}-rsa`, `${SELECTOR}-ed25519`]);

    // dkimpy, keys from Knot: both verify; a changed body verifies neither.
    const v = await dkimpyVerify(stored);
    assert.deepEqual(v.results, ["0 ok", "1 ok"], v.out);
    const tampered = Buffer.from(stored.toString("latin1").replace("Second line.", "Second line!"), "latin1");
    assert.deepEqual((await dkimpyVerify(tampered)).results, ["0 fail", "1 fail"]);

    // Wardmail's own account of the session.
    const session = await okSession("mx.peer.test");
    assert.match(String(session.tls), /^TLSv1\.[23]$/);
    assert.equal(session.tlsSource, "opportunistic");
    assert.equal(session.port, port);
    const delivered = logLines(need(w, "wardmail").output(), "delivered to the remote MX");
    assert.ok(delivered.some((l) => l.rcpt === "bob@peer.test" && l.mx === "mx.peer.test"), JSON.stringify(delivered));
  });

  test("a null MX domain (MX 0 .) bounces at once: DSN to alice, failed, 5.1.10, nothing sent", async () => {
    const subject = token("nullmx");
    await submit("x@nullmx.test", subject);
    const { raw, dsn } = await dsnWith(subject);
    assert.equal(dsn.reportType, "delivery-status");
    assert.equal(dsn.recipients.length, 1, raw);
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed");
    assert.equal(r.status, "5.1.10");
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?x@nullmx\.test$/i);
    assert.equal(dsn.message["reporting-mta"]?.replace(/\s+/g, " "), "dns; mx.example.test");
    assert.ok(dsn.returned?.content.toString("latin1").includes(`Subject: ${subject}`), "the original header is returned");
    assert.ok(!logLines(need(w, "wardmail").output(), "outbound session").some((l) => String(l.mx).includes("nullmx")));
  });

  test("a recipient the peer refuses (550 5.1.1) bounces with the remote diagnostic, Remote-MTA and the original header", async () => {
    const subject = token("5xx");
    await submit("nobody@peer.test", subject);
    const { raw, dsn } = await dsnWith(subject);
    assert.equal(dsn.recipients.length, 1, raw);
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed");
    assert.equal(r.status, "5.1.1");
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?nobody@peer\.test$/i);
    assert.match(r["diagnostic-code"] ?? "", /^smtp; ?550 5\.1\.1 <nobody@peer\.test>: Recipient address rejected/i, raw);
    assert.match(r["remote-mta"] ?? "", /^dns; ?mx\.peer\.test$/i);
    const returned = dsn.returned?.content.toString("latin1") ?? "";
    assert.ok(returned.includes(`Subject: ${subject}`), `original header missing:\n${raw}`);
    assert.match(returned, /^From: .*alice@example\.test/m);
    assert.match(returned, /^Message-Id: /im);
    const log = await need(peers.peer, "peer postfix").readLog();
    assert.match(log, /NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@peer\.test>/);
  });

  test("a peer that is down defers the message (queue shows the error); started on that port, it gets the message on retry", async () => {
    const subject = token("retry");
    await submit("carol@down.test", subject);
    const deferred = await queueEntry("carol@down.test", (e) => e.state === "deferred" && (e.lastError ?? "") !== "");
    assert.match(deferred.lastError ?? "", /127\.0\.0\.2/, JSON.stringify(deferred));
    assert.match(deferred.lastError ?? "", /ECONNREFUSED|refused|connect/i, JSON.stringify(deferred));
    assert.equal(sessions("mx.down.test").every((l) => l.tls === undefined), true);

    // Postfix's smtp-sink comes up on the MX address and port: it takes everything and dumps it to files.
    const started = Date.now();
    const dumps = await mkdtemp(join(tmpdir(), "wardmail-outbound-sink-"));
    sinkDir = dumps;
    await chmod(dumps, 0o777); // smtp-sink drops to "nobody" when started as root, and must reach the directory
    const root = process.getuid?.() === 0;
    sink = spawn(SMTP_SINK, [...(root ? ["-u", "nobody"] : []), "-d", join(dumps, "m."), `127.0.0.2:${port}`, "10"], { stdio: "ignore" });
    await waitForPort(port, 5000, { host: "127.0.0.2", alive: () => (sink?.exitCode !== null ? `smtp-sink exited with ${String(sink?.exitCode)}` : undefined) });
    let got: string | undefined;
    while (got === undefined && Date.now() - started < 20_000) {
      for (const name of await readdir(dumps)) {
        const text = await readFile(join(dumps, name), "latin1");
        if (text.includes(subject)) got = text;
      }
      if (got === undefined) await sleep(100);
    }
    assert.ok(got !== undefined, `not delivered on retry within 20 s\n${need(w, "wardmail").output().slice(-3000)}`);
    assert.match(got, /^X-Rcpt-Args: <carol@down\.test>$/m);
    assert.match(got, /^X-Mail-Args: <alice@example\.test>/m);
    // Gone from the queue once the delivery is recorded.
    const deadline = Date.now() + 5000;
    const queued = (): boolean => {
      const admin = QueueAdmin.open(need(w, "wardmail").dataDir);
      try {
        return admin.list().some((e) => e.recipients.some((r) => r.address === "carol@down.test"));
      } finally {
        admin.close();
      }
    };
    while (queued() && Date.now() < deadline) await sleep(100);
    assert.ok(!(await queueList(need(w, "wardmail"))).some((e) => e.to.includes("carol@down.test")), "still queued after delivery");
  });

  test("REQUIRETLS to a domain without MTA-STS or DANE: not sent, DSN 5.7.10", async () => {
    const subject = token("requiretls");
    await submitRequireTls("rt@peer.test", subject);
    const { raw, dsn } = await dsnWith("rt@peer.test");
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed", raw);
    assert.equal(r.status, "5.7.10", raw);
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?rt@peer\.test$/i);
    // Never handed to the peer.
    assert.equal((await need(peers.peer, "peer postfix").mailbox("rt@peer.test")).length, 0);
    assert.doesNotMatch(await need(peers.peer, "peer postfix").readLog(), /rt@peer\.test/);
    // The bounce returns the header only, despite RET=FULL: the body stays off the (possibly unprotected) way back.
    assert.ok(!raw.includes("Secret."), raw);
    assert.equal(dsn.returned?.type, "text/rfc822-headers", raw);
    assert.ok(dsn.returned?.content.toString("latin1").includes(`Subject: ${subject}`), raw);
  });

  test("MTA-STS enforce, MX certificate for the wrong name: deferred, never delivered (not even in plaintext)", async () => {
    const bad = need(peers.stsbad, "stsbad postfix");
    const subject = token("stsbad");
    await submit("fay@stsbad.test", subject);
    const deferred = await queueEntry("fay@stsbad.test", (e) => e.state === "deferred" && (e.lastError ?? "") !== "");
    assert.match(deferred.lastError ?? "", /certificate/i, JSON.stringify(deferred));
    assert.ok((policyHits.get("mta-sts.stsbad.test") ?? 0) >= 1, "the policy was never fetched");
    // Two attempts at least (retry_max 2 s), both refused after the handshake.
    const tried = await waitSessions("mx.stsbad.test", 2, 10_000);
    for (const l of tried) {
      assert.equal(l.tlsPolicy, "verify", JSON.stringify(l));
      assert.equal(l.tlsSource, "mta-sts", JSON.stringify(l));
      assert.match(String(l.error), /certificate-host-mismatch/, JSON.stringify(l));
    }
    const log = await bad.readLog();
    assert.match(log, /TLS connection established from \S+\[127\.0\.0\.1\]/, log.slice(-2000));
    assert.doesNotMatch(log, /fay@stsbad\.test|from=<alice@example\.test>|status=sent/, log.slice(-3000));
    assert.equal((await bad.mailbox("fay@stsbad.test")).length, 0);
    // Still queued; then out of the way of the other tests (its TLS-RPT counts stay).
    await queueEntry("fay@stsbad.test", (e) => e.state === "deferred");
    await dropFromQueue("fay@stsbad.test");
  });

  test("MTA-STS enforce, MX certificate valid for the policy's MX (test CA): delivered over verified TLS", async () => {
    const good = need(peers.sts, "sts postfix");
    const subject = token("sts");
    await submit("eve@sts.test", subject);
    const got = await good.waitForMailbox("eve@sts.test", 1, 15_000);
    assert.ok(got.some((m) => m.toString("latin1").includes(subject)), `not delivered\n${need(w, "wardmail").output().slice(-3000)}`);
    assert.ok((policyHits.get("mta-sts.sts.test") ?? 0) >= 1, "the policy was never fetched");
    const ok = await okSession("mx.sts.test");
    assert.equal(ok.tlsPolicy, "verify");
    assert.equal(ok.tlsSource, "mta-sts");
    assert.equal(ok.verified, true);
    assert.match(String(ok.tls), /^TLSv1\.[23]$/);
  });

  test("an MTA-STS policy that cannot be fetched (HTTP 404), none cached: delivered as without MTA-STS (RFC 8461 §5.1)", async () => {
    const peer = need(peers.peer, "peer postfix");
    const subject = token("stsfetch");
    await submit("gus@stsfetch.test", subject);
    const got = await peer.waitForMailbox("gus@stsfetch.test", 1, 15_000);
    assert.ok(got.some((m) => m.toString("latin1").includes(subject)), `not delivered\n${need(w, "wardmail").output().slice(-3000)}`);
    assert.ok((policyHits.get("mta-sts.stsfetch.test") ?? 0) >= 1, "the policy fetch was never tried");
    const session = await okSession("mx.stsfetch.test");
    assert.equal(session.tlsSource, "opportunistic");
  });

  test(
    "TLS-RPT counts the failed policy fetch (sts-policy-fetch-error, RFC 8460 §4.3.2)",
    () => {
      const store = TlsRptStore.open(need(w, "wardmail").dataDir);
      try {
        const r = store.report(utcDay(Date.now()), "stsfetch.test", { name: "mx.example.test", contact: "postmaster@mx.example.test" });
        const types = r?.policies.flatMap((p) => p.failureDetails.map((d) => d.resultType)) ?? [];
        assert.ok(types.includes("sts-policy-fetch-error"), JSON.stringify(r));
      } finally {
        store.close();
      }
    },
  );

  test("REQUIRETLS to an MTA-STS domain whose MX does not offer REQUIRETLS (Postfix 3.7): not sent, DSN 5.7.30", async () => {
    const good = need(peers.sts, "sts postfix");
    const subject = token("rt-sts");
    await submitRequireTls("rt@sts.test", subject);
    const { raw, dsn } = await dsnWith("rt@sts.test");
    requireTlsStsDsn = dsn;
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed", raw);
    assert.equal(r.status, "5.7.30", raw);
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?rt@sts\.test$/i);
    assert.equal((await good.mailbox("rt@sts.test")).length, 0);
    assert.doesNotMatch(await good.readLog(), /rt@sts\.test/);
  });

  test(
    "a failure Wardmail decided itself (no REQUIRETLS at the MX) has no SMTP Diagnostic-Code with a made-up reply code 0",
    () => {
      assert.ok(requireTlsStsDsn, "needs the test above");
      const r = requireTlsStsDsn.recipients[0] ?? {};
      // The MX replied nothing of the kind: the client saw no REQUIRETLS in EHLO and never sent MAIL.
      assert.doesNotMatch(r["diagnostic-code"] ?? "", /^smtp; ?0 /);
      assert.doesNotMatch(requireTlsStsDsn.text, /said: 0 /);
    },
  );

  test("STARTTLS required (tls_policy encrypt) but not offered: deferred, and today's TLS-RPT report says starttls-not-supported in RFC 8460 shape", async () => {
    const notls = need(peers.notls, "notls postfix");
    const s = need(w, "wardmail");
    const subject = token("notls");
    const dayBefore = utcDay(Date.now());
    await submit("dan@notls.test", subject);
    const deferred = await queueEntry("dan@notls.test", (e) => e.state === "deferred" && (e.lastError ?? "") !== "");
    assert.match(deferred.lastError ?? "", /STARTTLS|TLS/i, JSON.stringify(deferred));
    await waitSessions("mx.notls.test", 1);
    assert.equal((await notls.mailbox("dan@notls.test")).length, 0);
    assert.doesNotMatch(await notls.readLog(), /from=<alice@example\.test>|status=sent/);
    await dropFromQueue("dan@notls.test");

    const sample = JSON.parse(await readFile(conformanceFile("tlsrpt", "stalwart", "rpt01.json"), "utf8")) as Record<string, unknown>;
    const samplePolicy = (sample.policies as Record<string, unknown>[])[0] ?? {};
    const sampleDetails = samplePolicy["failure-details"] as Record<string, unknown>[];
    const detailNames = new Set([...sampleDetails.flatMap((d) => Object.keys(d)), "receiving-mx-helo", "failure-reason-code", "additional-information"]);
    const keys = (o: unknown): string[] => Object.keys(o as object).sort();

    const store = TlsRptStore.open(s.dataDir);
    try {
      const org = { name: "mx.example.test", contact: "postmaster@mx.example.test" };
      const reportFor = (domain: string): Record<string, unknown> => {
        for (const day of new Set([dayBefore, utcDay(Date.now())])) {
          const r = store.report(day, domain, org);
          if (r) return JSON.parse(reportJson(r)) as Record<string, unknown>;
        }
        return assert.fail(`no TLS-RPT data for ${domain}`);
      };
      const shape = (rep: Record<string, unknown>): Record<string, unknown> => {
        assert.deepEqual(keys(rep), keys(sample));
        assert.deepEqual(keys(rep["date-range"]), keys(sample["date-range"]));
        const pols = rep.policies as Record<string, unknown>[];
        assert.equal(pols.length, 1, JSON.stringify(rep));
        const p = pols[0] ?? {};
        assert.deepEqual(keys(p), keys(samplePolicy));
        assert.deepEqual(keys(p.policy), keys(samplePolicy.policy));
        assert.deepEqual(keys(p.summary), keys(samplePolicy.summary));
        for (const d of p["failure-details"] as Record<string, unknown>[]) {
          for (const k of Object.keys(d)) assert.ok(detailNames.has(k), `unknown failure-details field ${k}`);
          for (const k of ["result-type", "receiving-mx-hostname", "receiving-ip", "failed-session-count"]) assert.ok(k in d, `failure-details without ${k}: ${JSON.stringify(d)}`);
        }
        return p;
      };

      // The operator's "encrypt" policy: no published policy.
      const notlsRep = reportFor("notls.test");
      const p = shape(notlsRep);
      assert.deepEqual(p.policy, { "policy-type": "no-policy-found", "policy-string": [], "policy-domain": "notls.test", "mx-host": ["mx.notls.test"] });
      const sum = p.summary as Record<string, number>;
      assert.equal(sum["total-successful-session-count"], 0);
      assert.ok((sum["total-failure-session-count"] ?? 0) >= 1);
      const detail = (p["failure-details"] as Record<string, unknown>[]).find((d) => d["result-type"] === "starttls-not-supported");
      assert.ok(detail, JSON.stringify(p));
      assert.equal(detail["receiving-mx-hostname"], "mx.notls.test");
      assert.equal(detail["receiving-ip"], "127.0.0.3");
      assert.ok(Number(detail["failed-session-count"]) >= 1);
      assert.equal(sum["total-failure-session-count"], detail["failed-session-count"]);
      assert.match((notlsRep["date-range"] as Record<string, string>)["start-datetime"] ?? "", /^\d{4}-\d{2}-\d{2}T00:00:00Z$/);

      // MTA-STS: the wrong-name certificate, with the policy as fetched.
      const bad = shape(reportFor("stsbad.test"));
      assert.deepEqual(bad.policy, {
        "policy-type": "sts",
        "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.stsbad.test", "max_age: 86400"],
        "policy-domain": "stsbad.test",
        "mx-host": ["mx.stsbad.test"],
      });
      const mismatch = (bad["failure-details"] as Record<string, unknown>[]).find((d) => d["result-type"] === "certificate-host-mismatch");
      assert.ok(mismatch, JSON.stringify(bad));
      assert.equal(mismatch["receiving-ip"], "127.0.0.6");
      assert.equal((bad.summary as Record<string, number>)["total-successful-session-count"], 0);

      // MTA-STS success.
      const good = shape(reportFor("sts.test"));
      assert.equal((good.policy as Record<string, unknown>)["policy-type"], "sts");
      assert.ok(((good.summary as Record<string, number>)["total-successful-session-count"] ?? 0) >= 1, JSON.stringify(good));
      assert.equal((good.summary as Record<string, number>)["total-failure-session-count"], 0);
    } finally {
      store.close();
    }
  });

  test(
    "TLS-RPT failure details name the sending MTA's IP (sending-mta-ip, RFC 8460 §4.4)",
    () => {
      const store = TlsRptStore.open(need(w, "wardmail").dataDir);
      try {
        const r = store.report(utcDay(Date.now()), "notls.test", { name: "mx.example.test", contact: "postmaster@mx.example.test" });
        assert.ok(r, "no TLS-RPT data for notls.test (run with the test above)");
        const details = r.policies.flatMap((p) => p.failureDetails);
        assert.ok(details.length > 0);
        for (const d of details) assert.equal(d.sendingMtaIp, "127.0.0.1", JSON.stringify(d));
      } finally {
        store.close();
      }
    },
  );
});
