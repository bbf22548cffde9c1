/**
 * Issue 12 end to end: a DKIM signer whose name server never answers does
 * not end the shared verifier thread. A real Wardmail (checks on, a 2 s
 * check deadline, its resolver pointed at the test DNS server with a 10 s
 * DNS timeout, so the deadline comes first) and the metrics endpoint on;
 * the test DNS server (test/helpers/dns.ts) answers for good.test and reads
 * and drops every question at or under silent.test (a dead name server for
 * that domain). dkimpy's dkimsign signs; swaks sends.
 *
 * Message A, signed d=silent.test: its key query never answers, the check
 * deadline answers 451 4.7.0. While A waits, message B, signed d=good.test,
 * is accepted with dkim=pass; after A's deadline, message C as well. The
 * scrape then shows one verifier thread started, none ended (the thread
 * only waiting was abandoned there, not ended: src/threads task.ts), and
 * `promtool check metrics` accepts it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { startTestDnsServer, type TestDnsServer } from "./helpers/dns.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { pythonMissing } from "./helpers/dkim.ts";
import { freePort } from "./peers/ports.ts";
import { exec } from "./peers/exec.ts";
import { DKIMSIGN } from "./peers/signed-message.ts";

const AUTHSERV = "mx.example.test";
const MAILBOX = "user@example.test";
const POOL = "verification";

const skip = peerSkip(
  binaryMissing("swaks", ["--version"], "swaks"),
  binaryMissing(DKIMSIGN, ["--help"], "python3-dkim"),
  pythonMissing("dkim", "python3-dkim"),
  binaryMissing("promtool", ["--version"], "prometheus"),
);

let dir = "";
let dns: TestDnsServer | undefined;
let w: Wardmail | undefined;
let metricsPort = 0;
const keys: Record<string, string> = {};

/** A DKIM key record's text as TXT character-strings of at most 255 bytes. */
function chunks(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 255) out.push(text.slice(i, i + 255));
  return out;
}

before(async () => {
  if (skip !== false) return;
  dir = await mkdtemp(join(tmpdir(), "wardmail-vdeadline-"));
  const zone: Record<string, { readonly [type: string]: unknown }> = {
    "good.test": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"] },
    "_dmarc.good.test": { TXT: ["v=DMARC1; p=none"] },
  };
  for (const domain of ["good.test", "silent.test"]) {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    keys[domain] = join(dir, `${domain}.pem`);
    await writeFile(keys[domain], privateKey.export({ type: "pkcs1", format: "pem" }));
    const p = publicKey.export({ type: "spki", format: "der" }).toString("base64");
    zone[`sel._domainkey.${domain}`] = { TXT: [chunks(`v=DKIM1; k=rsa; p=${p}`)] };
  }
  dns = await startTestDnsServer(zone);
  dns.silent.push("silent.test");
  metricsPort = await freePort();
  w = await startWardmail({
    workers: 1,
    mailboxes: [MAILBOX],
    checks: [`[checks]`, `authserv_id = "${AUTHSERV}"`, `timeout = 2`, `[dns]`, `servers = ["127.0.0.1:${dns.port}"]`, `timeout = 10000`, `attempts = 1`].join("\n"),
    extra: `[metrics]\nlisten = ["127.0.0.1:${metricsPort}"]\n`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
  await dns?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A message From: someone@good.test signed by dkimsign with d=domain, s=sel. */
async function signed(domain: string, subject: string): Promise<string> {
  const msg = [`From: someone@good.test`, `To: ${MAILBOX}`, `Subject: ${subject}`, `Message-ID: <${subject}@good.test>`, "", `body of ${subject}`, ""].join("\r\n");
  const r = await exec(DKIMSIGN, ["sel", domain, keys[domain] as string], { input: msg, timeoutMs: 20_000 });
  const out = r.stdout.toString("latin1");
  assert.ok(r.code === 0 && out.startsWith("DKIM-Signature:"), `dkimsign: ${r.stderr.toString("latin1")}`);
  return out;
}

/** Sends with swaks (envelope from good.test, where SPF passes); the reply to the end of DATA. */
async function send(msg: string): Promise<string> {
  assert.ok(w);
  const file = join(dir, `m-${Math.random().toString(36).slice(2)}.eml`);
  await writeFile(file, `${msg.replace(/^\./gm, "..")}.\r\n`, "latin1");
  const r = await exec("swaks", ["--timeout", "20", "--helo", "mta.good.test", "--server", `127.0.0.1:${w.smtpPort}`, "--from", "someone@good.test", "--to", MAILBOX, "--no-data-fixup", "--data", `@${file}`], { timeoutMs: 30_000 });
  const lines = r.out.split(/\r?\n/);
  const dot = lines.findIndex((l) => l === " -> .");
  const reply = lines.slice(dot + 1).find((l) => /^<[-*]{1,2} +\d{3} /.test(l));
  assert.ok(dot >= 0 && reply !== undefined, r.out);
  return reply.replace(/^<[-*]{1,2} +/, "");
}

/** The scrape's text. */
async function scrapeText(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return res.text();
}

/** The scrape as "name{labels}" → value. */
async function scrape(text?: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (const line of (text ?? (await scrapeText())).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}

const ended = (m: Map<string, number>): string[] => [...m].filter(([k, v]) => k.startsWith("wardmail_task_threads_ended_total{") && v > 0).map(([k, v]) => `${k} ${v}`);

/** The stored message whose Subject is `subject`, after waiting for it. */
async function stored(subject: string): Promise<string> {
  assert.ok(w);
  for (let i = 0; i < 100; i++) {
    for (const f of await w.maildir(MAILBOX)) {
      const text = (await readFile(f)).toString("latin1");
      if (text.includes(`\r\nSubject: ${subject}\r\n`)) return text;
    }
    await sleep(100);
  }
  assert.fail(`no stored message "${subject}"`);
}

test("a signer's silent name server: 451 4.7.0 at the check deadline, good mail verified meanwhile and after, the verifier thread not ended", { skip, timeout: 60_000 }, async () => {
  assert.ok(w && dns);
  // A first message starts the verifier thread (the pool starts it at the first task).
  assert.match(await send(await signed("good.test", "warm")), /^250 2\.0\.0/);
  assert.match(await stored("warm"), /dkim=pass header\.d=good\.test/);
  const m0 = await scrape();
  assert.equal(m0.get(`wardmail_task_threads_started_total{pool="${POOL}"}`), 1, [...m0].join("\n"));
  assert.equal(m0.get(`wardmail_task_threads{pool="${POOL}"}`), 1);

  const [a, b] = await Promise.all([signed("silent.test", "silent"), signed("good.test", "during")]);
  let settledA = false;
  const sentA = send(a).finally(() => {
    settledA = true;
  });
  // B while A waits for its key in the same thread.
  for (let i = 0; i < 100 && !dns.queries.some((q) => q.name === "sel._domainkey.silent.test"); i++) await sleep(20);
  assert.ok(dns.queries.some((q) => q.name === "sel._domainkey.silent.test"), "A's key was never asked for");
  const replyB = await send(b);
  assert.match(replyB, /^250 2\.0\.0/);
  assert.equal(settledA, false, "B was verified while A waited for its key");
  assert.match(await sentA, /^451 4\.7\.0/);
  assert.match(await stored("during"), /dkim=pass header\.d=good\.test/);

  // After A's deadline (and past the abandoned task's grace): the same thread verifies C.
  await sleep(1500);
  assert.match(await send(await signed("good.test", "after")), /^250 2\.0\.0/);
  assert.match(await stored("after"), /dkim=pass header\.d=good\.test/);

  const text = await scrapeText();
  const lint = await exec("promtool", ["check", "metrics"], { input: text, timeoutMs: 20_000 });
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.out}\n${text}`);
  const m = await scrape(text);
  assert.equal(m.get(`wardmail_task_threads_started_total{pool="${POOL}"}`), 1, `a verifier thread was started again:\n${ended(m).join("\n")}`);
  assert.deepEqual(ended(m), [], "a verifier thread was ended");
  assert.equal(m.get(`wardmail_task_threads{pool="${POOL}"}`), 1);
  assert.equal(m.get('wardmail_messages_total{listener="smtp",reason="451 4.7.0",result="refused"}'), 1);
  assert.equal(w.process.exitCode, null);
});
