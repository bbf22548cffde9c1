/**
 * Outbound delivery end to end with real, independent peers
 * (test/helpers/outbound-world.ts: Knot, Postfix MX hosts, one Wardmail):
 * a submitted message reaches the peer's Postfix over STARTTLS, signed with
 * the keys that `wardmail dkim keygen` made, and dkimpy checks both DKIM
 * signatures against the records Knot publishes; a null MX and a refused
 * recipient bounce to alice as DSNs; a peer that is down gets the message
 * on retry (Postfix's smtp-sink, started on 127.0.0.2 by that test).
 * REQUIRETLS, MTA-STS, required STARTTLS and TLS-RPT are in
 * outbound-tls.test.ts.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { QueueAdmin } from "../src/queue/index.ts";
import { outboundWorld, outboundSkip, pipe, SELECTOR, token } from "./helpers/outbound-world.ts";
import { waitForPort } from "./peers/ports.ts";
import { SMTP_SINK_BIN as SMTP_SINK } from "./peers/postfix.ts";
import { logLines, queueList } from "./peers/submission.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-dkim lives (not a pyenv shim)

const skip = outboundSkip();
const world = outboundWorld({ skip, peers: ["peer"] });
const { submit, dsnWith, queueEntry, sessions, okSession } = world;

/** Postfix's smtp-sink, started on 127.0.0.2 by the retry test. */
let sink: ChildProcess | undefined;
let sinkDir = "";

after(async () => {
  if (sink !== undefined && sink.exitCode === null) sink.kill("SIGKILL");
  if (sinkDir !== "") await rm(sinkDir, { recursive: true, force: true });
});

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
  const r = await pipe(PYTHON, ["-c", code, String(world.knotPort())], msg);
  assert.equal(r.code, 0, `dkimpy crashed: ${r.out}`);
  return { results: r.out.split("\n").filter((l) => /^\d+ (ok|fail)$/.test(l)), out: r.out };
}

// ---------------------------------------------------------------- tests

describe("outbound delivery to real MX hosts", { skip }, () => {
  test("a submitted message reaches the peer's Postfix over STARTTLS with RSA and Ed25519 DKIM signatures that dkimpy verifies", async () => {
    const peer = world.peer("peer");
    const subject = token("dkim");
    await submit("bob@peer.test", subject);

    const stored = (await peer.waitForMailbox("bob@peer.test", 1, 15_000)).find((m) => m.toString("latin1").includes(subject));
    assert.ok(stored, `not delivered to bob@peer.test\n${world.wardmail().output().slice(-3000)}\n${(await peer.readLog()).slice(-3000)}`);

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
    assert.equal(session.port, world.port());
    const delivered = logLines(world.wardmail().output(), "delivered to the remote MX");
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
    assert.ok(!logLines(world.wardmail().output(), "outbound session").some((l) => String(l.mx).includes("nullmx")));
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
    const log = await world.peer("peer").readLog();
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
    sink = spawn(SMTP_SINK, [...(root ? ["-u", "nobody"] : []), "-d", join(dumps, "m."), `127.0.0.2:${world.port()}`, "10"], { stdio: "ignore" });
    await waitForPort(world.port(), 5000, { host: "127.0.0.2", alive: () => (sink?.exitCode !== null ? `smtp-sink exited with ${String(sink?.exitCode)}` : undefined) });
    let got: string | undefined;
    while (got === undefined && Date.now() - started < 20_000) {
      for (const name of await readdir(dumps)) {
        const text = await readFile(join(dumps, name), "latin1");
        if (text.includes(subject)) got = text;
      }
      if (got === undefined) await sleep(100);
    }
    assert.ok(got !== undefined, `not delivered on retry within 20 s\n${world.wardmail().output().slice(-3000)}`);
    assert.match(got, /^X-Rcpt-Args: <carol@down\.test>$/m);
    assert.match(got, /^X-Mail-Args: <alice@example\.test>/m);
    // Gone from the queue once the delivery is recorded.
    const deadline = Date.now() + 5000;
    const queued = (): boolean => {
      const admin = QueueAdmin.open(world.wardmail().dataDir);
      try {
        return admin.list().some((e) => e.recipients.some((r) => r.address === "carol@down.test"));
      } finally {
        admin.close();
      }
    };
    while (queued() && Date.now() < deadline) await sleep(100);
    assert.ok(!(await queueList(world.wardmail())).some((e) => e.to.includes("carol@down.test")), "still queued after delivery");
  });
});
