/**
 * Spam scoring with a real rspamd (test/peers/rspamd.ts: its own minimal
 * config, test rules that pick the score from an X-Test-Score header and
 * flag what rspamd was told): GTUBE is refused on the MX and on submission;
 * a normal message gets its score header (and rspamd saw the client, HELO,
 * recipients and the authenticated user); rspamd's add header, greylist and
 * soft reject map through checks.actions; with rspamd down, mail is
 * accepted and tagged (the default "spam.error" = "tag").
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { AccountStore } from "../src/accounts/index.ts";
import { SpamCheck } from "../src/spam/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { gtube, rspamdMissing, startRspamd, type Rspamd } from "./peers/rspamd.ts";
import { freePort } from "./peers/ports.ts";
import { mailWith, swaks, waitForLog } from "./peers/submission.ts";
import { TransactionState } from "../src/policy/index.ts";

const skip = peerSkip(rspamdMissing(), binaryMissing("swaks", ["--version"], "swaks"));
const PW = "alice-password-1";

let rspamd: Rspamd | undefined;
let main: Wardmail | undefined;
let down: Wardmail | undefined;

function need<T>(x: T | undefined): T {
  assert.ok(x, "set up in before()");
  return x;
}

/** The end-of-data reply was 250 (plain "<-" or TLS "<~"). */
const QUEUED = /^<[-~] {2}250 2\.0\.0 Ok: queued/m;
const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2, 10)}`;

function mx(w: Wardmail, subject: string, extra: string[] = []) {
  return swaks(["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@client.test", "--to", "user@example.test", "--header", `Subject: ${subject}`, ...extra]);
}

function submit(w: Wardmail, subject: string, extra: string[] = []) {
  return swaks(["--server", `127.0.0.1:${w.submissionPort}`, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", PW,
    "--from", "alice@example.test", "--to", "user@example.test", "--header", `Subject: ${subject}`, ...extra]);
}

/** The unfolded header section of a delivered message. */
const headersOf = (text: string): string => text.slice(0, text.indexOf("\r\n\r\n") + 2).replace(/\r\n[ \t]+/g, " ");

describe("spam scoring with a real rspamd", { skip }, () => {
  before(async () => {
    rspamd = await startRspamd();
    const closed = await freePort();
    [main, down] = await Promise.all([
      startWardmail({ workers: 1, extra: `[spam]\nrspamd = "${rspamd.url}"\ntimeout = 5\n` }),
      startWardmail({ workers: 1, extra: `[spam]\nrspamd = "http://127.0.0.1:${closed}"\ntimeout = 2\n` }),
    ]);
    for (const w of [main, down]) {
      const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test", "localhost"] });
      try {
        await st.addAccount("alice@example.test", PW);
      } finally {
        st.close();
      }
    }
  });

  after(async () => {
    for (const w of [main, down]) await w?.stop().then(() => w.cleanup());
    await rspamd?.stop();
  });

  test("GTUBE is refused on the MX (550 5.7.1) and on submission", async () => {
    const w = need(main);
    const a = await mx(w, token("gtube-mx"), ["--body", `Buy now\n${gtube()}\n`]);
    assert.match(a.out, /<[*~]\* 550 5\.7\.1 Message rejected as spam/, a.out);
    const b = await submit(w, token("gtube-sub"), ["--body", `Buy now\n${gtube()}\n`]);
    assert.match(b.out, /<[*~]\* 550 5\.7\.1 Message rejected as spam/, b.out);
    const line = await waitForLog(() => w.output(), "checks", (l) => JSON.stringify(l.triggered) === '["spam.reject"]');
    assert.ok(line, w.output().slice(-2000));
  });

  test("a normal message gets its score header; rspamd saw client, HELO, recipients; a forged score header is removed", async () => {
    const w = need(main);
    const t = token("normal");
    const r = await mx(w, t, ["--header", "X-Wardmail-Spam: score=-100 required=15 action=\"no action\""]);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(w, "user@example.test", t));
    const spam = h.split("\r\n").filter((l) => l.startsWith("X-Wardmail-Spam:"));
    assert.equal(spam.length, 1, h);
    assert.match(spam[0] ?? "", /^X-Wardmail-Spam: score=0\.03 required=15\.00 action="no action" symbols=/);
    for (const s of ["WM_IP", "WM_HELO", "WM_RCPT"]) assert.match(spam[0] ?? "", new RegExp(s));
    assert.doesNotMatch(spam[0] ?? "", /WM_USER/);
    assert.doesNotMatch(h, /X-Wardmail-Verdict/);
  });

  test("submission is scanned too, with the authenticated user", async () => {
    const w = need(main);
    const t = token("sub");
    const r = await submit(w, t);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(w, "user@example.test", t));
    assert.match(h, /X-Wardmail-Spam: score=[0-9.]+ required=15\.00 action="no action" symbols=.*WM_USER/);
  });

  test("rspamd's add header and rewrite subject are tags; greylist and soft reject are 451 4.7.1", async () => {
    const w = need(main);
    const t = token("addheader");
    const r = await mx(w, t, ["--header", "X-Test-Score: 7"]);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(w, "user@example.test", t));
    assert.match(h, /X-Wardmail-Spam: score=7\.\d\d required=15\.00 action="add header" symbols=WARDMAIL_TEST_SCORE/);
    assert.match(h, /X-Wardmail-Verdict: spam\.add_header \(tag\)/);
    const grey = await mx(w, token("grey"), ["--header", "X-Test-Score: 5"]);
    assert.match(grey.out, /<[*~]\* 451 4\.7\.1 Greylisted; try again later/, grey.out);
    const soft = await mx(w, token("soft"), ["--header", "X-Test-Score: 12"]);
    assert.match(soft.out, /<[*~]\* 451 4\.7\.1 Message deferred by the spam filter/, soft.out);
    const rt = token("rewrite");
    const rw = await mx(w, rt, ["--body", `${gtube("Z")}\n`]);
    assert.match(rw.out, QUEUED, rw.out);
    assert.match(headersOf(await mailWith(w, "user@example.test", rt)), /X-Wardmail-Verdict: spam\.rewrite_subject \(tag\)/);
  });

  test("rspamd down: accepted and tagged (spam.error = tag), the failure logged", async () => {
    const w = need(down);
    const t = token("down");
    const r = await mx(w, t, ["--body", `${gtube()}\n`]);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(w, "user@example.test", t));
    assert.match(h, /X-Wardmail-Spam: error \(rspamd unavailable\)/);
    assert.match(h, /X-Wardmail-Verdict: spam\.error \(tag\)/);
    assert.ok(await waitForLog(() => w.output(), "rspamd failed; verdict spam.error", (l) => typeof l.err === "string"), w.output().slice(-2000));
  });

  test("rspamd sees the inbound checks' Authentication-Results, not a forged one of ours", async () => {
    const check = new SpamCheck({ url: need(rspamd).url, timeoutMs: 5000, maxSize: 1 << 20, authservId: "mx.example.test" });
    const content = Buffer.from("Authentication-Results: mx.example.test; spf=pass\r\nFrom: a@client.test\r\nSubject: x\r\n\r\nhello\r\n");
    const base = { clientIp: "192.0.2.1", helo: "client.test", mailFrom: "a@client.test", recipients: ["user@example.test", "jürgen@example.test"], content, state: new TransactionState(), signal: AbortSignal.timeout(5000) };
    const forged = await check.data(base);
    assert.doesNotMatch(forged.headers?.[0] ?? "", /WM_AR/, "the forged header was removed before scanning");
    const ours = await check.data({ ...base, earlier: { verdicts: [], headers: ["Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=client.test"] } });
    assert.match(ours.headers?.[0] ?? "", /WM_AR/);
    assert.match(ours.headers?.[0] ?? "", /WM_RCPT/, "an SMTPUTF8 recipient goes over as UTF-8");
    assert.deepEqual(ours.verdicts, []);
  });

  // Last: stops the shared rspamd.
  test("rspamd stopped while Wardmail runs: the next message is accepted and tagged", async () => {
    const w = need(main);
    await need(rspamd).stop();
    const t = token("stopped");
    const r = await mx(w, t);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(w, "user@example.test", t));
    assert.match(h, /X-Wardmail-Spam: error \(rspamd unavailable\)/);
    assert.match(h, /X-Wardmail-Verdict: spam\.error \(tag\)/);
  });
});
