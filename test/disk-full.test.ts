/**
 * Disk full, with a real Wardmail whose spool (or Maildirs) live on a small
 * tmpfs mounted by the test (needs root; skipped otherwise with the reason):
 *
 * - spool: below limits.min_free_space MAIL gets 452 4.3.1; a message that
 *   passes MAIL but runs out of space while the spool writes it gets
 *   452 4.3.1 at the end of DATA, never 250; when space returns the next
 *   message gets 250 and is delivered; every message that got 250 is
 *   delivered and the queue ends empty.
 * - Maildir: a mailbox on a full file system defers the delivery (the queue
 *   holds the message, retried) and delivers once space returns.
 *
 * Messages go through the raw SMTP client of test/peers (exact replies per
 * command), from 127.0.0.1 to the MX listener.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readdir, stat, statfs, truncate, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { RawSmtpClient, type SmtpReply } from "./peers/smtp-client.ts";
import { logLines, mailWith, queueList } from "./peers/submission.ts";
import { peerSkip, rootMissing } from "./helpers/peers.ts";

const MiB = 1024 * 1024;

/** Mounts a tmpfs of `size` on dir (created); returns an error text or undefined. */
function mountTmpfs(dir: string, size: string): string | undefined {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? undefined : `mount -t tmpfs failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`;
}

function umount(dir: string): void {
  if (spawnSync("umount", [dir], { timeout: 10_000 }).status !== 0) spawnSync("umount", ["-l", dir], { timeout: 10_000 });
}

/** Why these tests cannot run here, or undefined: root, and a tmpfs mount that works. */
function whySkip(): string | undefined {
  const notRoot = rootMissing("mounts a tmpfs (mount -t tmpfs)");
  if (notRoot !== undefined) return notRoot;
  const probe = mkdtempSync(join(tmpdir(), "wardmail-tmpfs-probe-"));
  try {
    const err = mountTmpfs(probe, "1m");
    if (err === undefined) umount(probe);
    return err;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const skip = peerSkip(whySkip());
const mounts: string[] = [];
const dirs: string[] = [];
const servers: Wardmail[] = [];

after(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  for (const m of mounts.reverse()) umount(m);
  for (const s of servers) await s.cleanup().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

interface Attempt {
  mail: SmtpReply;
  /** The reply to the end of DATA, when MAIL, RCPT and DATA were accepted. */
  end?: SmtpReply;
}

/** One transaction to user@example.test carrying token, with `size` bytes of body. */
async function attempt(port: number, token: string, size = 0, declare?: number): Promise<Attempt> {
  const c = await RawSmtpClient.connect(port);
  try {
    assert.equal((await c.readReply()).code, 220);
    assert.equal((await c.command("EHLO client.wardmail.test")).code, 250);
    const mail = await c.command(`MAIL FROM:<sender@client.test>${declare !== undefined ? ` SIZE=${declare}` : ""}`);
    if (mail.code !== 250) return { mail };
    assert.equal((await c.command("RCPT TO:<user@example.test>")).code, 250);
    assert.equal((await c.command("DATA")).code, 354);
    const line = "x".repeat(76);
    const body = [`Subject: ${token}`, "", token, ...Array.from({ length: Math.ceil(size / 78) }, () => line)].join("\r\n");
    const end = await c.sendData(body);
    await c.quit();
    return { mail, end };
  } finally {
    c.close();
  }
}

/** Waits (at most 15 s) until the server logged msg at least n times. */
async function waitForLog(w: Wardmail, msg: string, n: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (logLines(w.output(), msg).length < n && Date.now() < deadline) await sleep(100);
  assert.ok(logLines(w.output(), msg).length >= n, `"${msg}" logged fewer than ${n} times\n${w.output().slice(-3000)}`);
}

/** "452 4.3.1 ..." as code and enhanced code. */
function says(r: SmtpReply | undefined): string {
  return r === undefined ? "none" : `${r.code} ${(r.lines[0] ?? "").split(" ")[0]}`;
}

describe("disk full", { skip }, () => {
  test("spool on a full file system: 452 4.3.1 at MAIL below the floor and at the end of DATA on ENOSPC, never 250; nothing accepted is lost; recovers", { timeout: 90_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), "wardmail-diskfull-"));
    dirs.push(base);
    const data = join(base, "data");
    const err = mountTmpfs(data, "8m");
    assert.equal(err, undefined, err);
    mounts.push(data);
    const floor = MiB;
    const w = await startWardmail({ dataDir: data, workers: 1, extra: `[limits]\nmin_free_space = ${floor}\n[queue]\nretry_min = 1\nretry_max = 2\n` });
    servers.push(w);
    const accepted: string[] = [];
    const filler = join(data, "filler");

    // 1. Room enough: accepted and delivered.
    const a = await attempt(w.smtpPort, "token-first");
    assert.equal(says(a.end), "250 2.0.0");
    accepted.push("token-first");
    await mailWith(w, "user@example.test", "token-first");

    // 2. Fill the file system below the floor: MAIL gets 452 4.3.1.
    await writeFile(filler, Buffer.alloc(Math.max(0, (await freeBytes(data)) - floor / 2)));
    assert.ok((await freeBytes(data)) < floor, "the filler leaves less than the floor");
    await sleep(1100); // the server reads statfs at most once a second
    const below = await attempt(w.smtpPort, "token-below");
    assert.equal(says(below.mail), "452 4.3.1", below.mail.raw);
    assert.equal(below.end, undefined);

    // 3. Just above the floor, but not room for the message: MAIL passes, the
    //    spool write runs out of space, and the end of DATA gets 452 4.3.1, not 250.
    const release = floor + MiB / 2 - (await freeBytes(data));
    await truncate(filler, Math.max(0, (await stat(filler)).size - release));
    const free = await freeBytes(data);
    assert.ok(free >= floor && free < floor + MiB, `free space ${free} just above the floor ${floor}`);
    await sleep(1100);
    // Declared with SIZE= (RFC 1870), the same message is refused at MAIL already.
    const declared = await attempt(w.smtpPort, "token-declared", 2 * MiB, 2 * MiB);
    assert.equal(says(declared.mail), "452 4.3.1", declared.mail.raw);
    assert.equal(declared.end, undefined);
    // A small declared size still passes MAIL there.
    const small = await attempt(w.smtpPort, "token-small-declared", 0, 1000);
    assert.equal(says(small.mail), "250 2.1.0", small.mail.raw);
    assert.equal(says(small.end), "250 2.0.0", small.end?.raw);
    accepted.push("token-small-declared");
    const big = await attempt(w.smtpPort, "token-enospc", 2 * MiB);
    assert.equal(says(big.mail), "250 2.1.0");
    assert.equal(says(big.end), "452 4.3.1", big.end?.raw);
    await waitForLog(w, "spool full: message refused with 452 4.3.1", 1);

    // The server keeps answering; with the file system full, MAIL is refused again.
    await sleep(1100);
    const stillFull = await attempt(w.smtpPort, "token-full");
    assert.equal(says(stillFull.mail), "452 4.3.1");

    // 4. Space returns: the same big message is accepted and delivered.
    await unlink(filler);
    await sleep(1100);
    const again = await attempt(w.smtpPort, "token-after", 2 * MiB);
    assert.equal(says(again.end), "250 2.0.0", again.end?.raw);
    accepted.push("token-after");

    // Every message that got 250 is delivered, the refused ones are not, and the queue is empty.
    for (const t of accepted) await mailWith(w, "user@example.test", t, 20_000);
    const files = await w.maildir("user@example.test");
    assert.equal(files.length, accepted.length);
    const deadline = Date.now() + 10_000;
    while ((await queueList(w)).length > 0 && Date.now() < deadline) await sleep(200);
    assert.deepEqual(await queueList(w), []);
  });

  test("Maildir on a full file system: delivery defers and retries, the queue keeps the message, delivered when space returns", { timeout: 90_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), "wardmail-maildirfull-"));
    dirs.push(base);
    const data = join(base, "data");
    const mail = join(data, "mail");
    const err = mountTmpfs(mail, "1m");
    assert.equal(err, undefined, err);
    mounts.push(mail);
    const w = await startWardmail({ dataDir: data, workers: 1, extra: "[queue]\nretry_min = 1\nretry_max = 2\n" });
    servers.push(w);

    // The Maildir exists (first message), then its file system is filled up.
    assert.equal(says((await attempt(w.smtpPort, "token-one")).end), "250 2.0.0");
    await mailWith(w, "user@example.test", "token-one");
    const filler = join(mail, "filler");
    await writeFile(filler, Buffer.alloc(2 * MiB)).catch((e: NodeJS.ErrnoException) => assert.equal(e.code, "ENOSPC"));
    assert.ok((await freeBytes(mail)) < 4096, "the Maildir file system is full");

    // Accepted (the spool has room), but the Maildir write fails: deferred, kept in the queue, retried.
    const two = await attempt(w.smtpPort, "token-two", 64 * 1024);
    assert.equal(says(two.end), "250 2.0.0");
    await waitForLog(w, "maildir write failed", 2);
    const failures = logLines(w.output(), "maildir write failed");
    assert.ok(failures.length >= 2, `retried after the first failure: ${failures.length} failures\n${w.output().slice(-3000)}`);
    assert.ok(failures.every((l) => String(l.err).startsWith("ENOSPC")), JSON.stringify(failures));
    assert.ok(logLines(w.output(), "delivery deferred").length >= 1);
    const queued = await queueList(w);
    assert.equal(queued.length, 1, JSON.stringify(queued));
    assert.equal((await w.maildir("user@example.test")).length, 1, "only the first message is delivered so far");
    assert.deepEqual(await readdir(join(mail, "example.test", "user", "tmp")), [], "no half-written file left in tmp/");

    // Space returns: the retry delivers it, once, and the queue is empty.
    await unlink(filler);
    await mailWith(w, "user@example.test", "token-two", 20_000);
    const end = Date.now() + 10_000;
    while ((await queueList(w)).length > 0 && Date.now() < end) await sleep(200);
    assert.deepEqual(await queueList(w), []);
    assert.equal((await w.maildir("user@example.test")).length, 2);
  });
});
