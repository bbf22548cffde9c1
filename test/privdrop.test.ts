/**
 * Privilege drop: started as root with `server.user = "nobody"`, the main
 * thread prepares the data directory and gives it to nobody; the worker
 * threads bind their ports and load their keys as root, then the whole
 * process (every thread: glibc applies setuid/setgid to all of them) runs as
 * nobody (uid, gid and supplementary groups). Local delivery starts only
 * after the drop, so Maildir files and the spool files belong to nobody.
 * Also: a message that is due at start-up (recovered from the spool) is
 * delivered as nobody too, and the root chown of the data directory at
 * start does not follow a symlink planted there by the unprivileged user.
 *
 * Runs only as root (CI is root); otherwise every test is skipped, or fails
 * when peers are required (CI=true, WARDMAIL_REQUIRE_PEERS=1; test/helpers/peers.ts).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lchown, lstat, mkdir, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { processTree } from "./peers/procs.ts";
import { peerSkip, rootMissing } from "./helpers/peers.ts";
import { readdirSync, readFileSync } from "node:fs";

const SKIP = peerSkip(rootMissing("Wardmail binds as root, then drops to nobody"));

function idOf(flag: "-u" | "-g", user: string): number {
  return Number(execFileSync("id", [flag, user], { encoding: "utf8" }).trim());
}

interface Ids {
  uid: number[];
  gid: number[];
  groups: number[];
}

/** Real, effective, saved and fs uid/gid and the supplementary groups of a process. */
function idsOf(pid: number | string): Ids {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const field = (name: string): number[] => {
    const m = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status);
    assert.ok(m, `no ${name} in /proc/${pid}/status`);
    return (m[1] ?? "").trim().split(/\s+/).filter(Boolean).map(Number);
  };
  return { uid: field("Uid"), gid: field("Gid"), groups: field("Groups") };
}

let w: Wardmail | undefined;
let nobodyUid = -1;
let nobodyGid = -1;

function server(): Wardmail {
  assert.ok(w, "server not started");
  return w;
}

/**
 * Every thread of the server and of any process under it: /proc/PID/task/TID.
 * (Workers are threads of one process today; were they processes again, their
 * threads would be found here too.)
 */
function serverTasks(s: Wardmail): { pid: number; tid: number; name: string }[] {
  const primary = s.process.pid;
  assert.ok(primary !== undefined);
  const out: { pid: number; tid: number; name: string }[] = [];
  for (const pid of processTree(primary)) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      let name = "?";
      try {
        name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "latin1").trim();
      } catch {
        continue;
      }
      out.push({ pid, tid: Number(tid), name });
    }
  }
  return out;
}

function idsOfTask(pid: number, tid: number): Ids {
  return idsOf(`${pid}/task/${tid}`);
}

async function queueList(s: Wardmail): Promise<{ id: string; state: string; to: string[] }[]> {
  const r = await s.cli(["queue", "list", "--json", "--config", s.configPath]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: string; state: string; to: string[] }[];
}

describe("root binds, then drops to nobody", { skip: SKIP }, () => {
  before(async () => {
    nobodyUid = idOf("-u", "nobody");
    nobodyGid = idOf("-g", "nobody");
    w = await startWardmail({
      workers: 2,
      dirMode: 0o755, // mkdtemp makes 0700: nobody could not reach data/ inside it
      serverExtra: 'user = "nobody"',
      mailboxes: ["user@example.test", "late@example.test", "postmaster@example.test"],
    });
  });

  after(async () => {
    if (w === undefined) return;
    await w.stop();
    await w.cleanup();
  });

  test("every thread of the server runs as nobody: uid, gid, no supplementary root group", (t) => {
    const s = server();
    const tasks = serverTasks(s);
    const names = tasks.map((x) => x.name);
    t.diagnostic(`${tasks.length} threads in ${new Set(tasks.map((x) => x.pid)).size} process(es): ${[...new Set(names)].join(", ")}`);
    // workers = 2: two threads Node names "WorkerThread", besides the main thread and Node's own.
    assert.equal(names.filter((n) => n === "WorkerThread").length, 2, names.join(", "));
    for (const { pid, tid, name } of tasks) {
      const ids = idsOfTask(pid, tid);
      const what = `${pid}/task/${tid} (${name})`;
      assert.deepEqual(ids.uid, [nobodyUid, nobodyUid, nobodyUid, nobodyUid], `${what} Uid (real, effective, saved, fs)`);
      assert.deepEqual(ids.gid, [nobodyGid, nobodyGid, nobodyGid, nobodyGid], `${what} Gid (real, effective, saved, fs)`);
      assert.ok(!ids.groups.includes(0), `${what} kept supplementary group 0: ${ids.groups.join(",")}`);
    }
  });

  test("a message over SMTP is delivered; Maildir file and folders belong to nobody", async () => {
    const s = server();
    await sendOneMessage({ port: s.smtpPort, from: "a@sender.test", to: ["user@example.test"], body: "Subject: privdrop\r\n\r\nhello from root-started wardmail\r\n" });
    const files = await s.waitForMail("user@example.test", 1);
    assert.equal(files.length, 1, s.output().slice(-3000));
    const st = await stat(files[0] as string);
    assert.equal(st.uid, nobodyUid, "Maildir file owner");
    assert.equal(st.gid, nobodyGid, "Maildir file group");
    const maildir = join(s.dataDir, "mail", "example.test", "user");
    for (const d of [maildir, join(maildir, "new"), join(maildir, "cur"), join(maildir, "tmp")]) {
      assert.equal((await stat(d)).uid, nobodyUid, `${d} owner`);
    }
  });

  test("the data directory and every spool file belong to nobody", async () => {
    const s = server();
    const spool = join(s.dataDir, "spool");
    const names = await readdir(spool);
    assert.ok(names.some((n) => /^shard-\d+\.db$/.test(n)), `no shard files in ${spool}: ${names.join(", ")}`);
    for (const p of [s.dataDir, spool, ...names.map((n) => join(spool, n))]) {
      const st = await stat(p);
      assert.equal(st.uid, nobodyUid, `${p} owner is ${st.uid}`);
      assert.equal(st.gid, nobodyGid, `${p} group is ${st.gid}`);
    }
    // The spool key: made by root at start, given to nobody, readable by it alone.
    const key = await stat(join(s.dataDir, "spool.keys"));
    assert.equal(key.uid, nobodyUid);
    assert.equal(key.mode & 0o777, 0o600);
    // rotate-key run by root keeps it so (the next test's messages are sealed with the new key).
    const r = await s.cli(["spool", "rotate-key", "--config", s.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const rotated = await stat(join(s.dataDir, "spool.keys"));
    assert.equal(rotated.uid, nobodyUid);
    assert.equal(rotated.mode & 0o777, 0o600);
  });

  test("after a restart: a message due at start-up is delivered as nobody, and chown does not follow symlinks", async (t) => {
    let s = server();
    // A regular file where the Maildir of late@ should be: delivery is deferred (60 s backoff).
    const lateDir = join(s.dataDir, "mail", "example.test", "late");
    await mkdir(join(s.dataDir, "mail", "example.test"), { recursive: true });
    await writeFile(lateDir, "not a directory\n");
    await sendOneMessage({ port: s.smtpPort, from: "a@sender.test", to: ["late@example.test"], body: "Subject: late\r\n\r\nrecovered at start-up\r\n" });
    let entry: { id: string; state: string } | undefined;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      entry = (await queueList(s)).find((e) => e.to.includes("late@example.test"));
      if (entry?.state === "deferred") break;
      await sleep(100);
    }
    assert.equal(entry?.state, "deferred", `expected the message to late@ deferred:\n${s.output().slice(-3000)}`);

    // What an unprivileged worker could plant in its data directory: a symlink to a root-owned file.
    const victim = join(s.dir, "root-owned.txt");
    await writeFile(victim, "must stay root's\n");
    await symlink(victim, join(s.dataDir, "planted-link"));
    await lchown(join(s.dataDir, "planted-link"), nobodyUid, nobodyGid);

    assert.equal(await s.stop(), 0);
    await rm(lateDir);
    const retry = await s.cli(["queue", "retry", (entry as { id: string }).id, "--config", s.configPath]);
    assert.equal(retry.code, 0, retry.stderr);
    s = w = await s.restart();

    const files = await s.waitForMail("late@example.test", 1);
    assert.equal(files.length, 1, s.output().slice(-3000));
    assert.equal((await stat(files[0] as string)).uid, nobodyUid, "Maildir file delivered at start-up: owner");
    assert.equal((await stat(join(s.dataDir, "mail", "example.test", "late", "new"))).uid, nobodyUid, "late/new owner");
    for (const { pid, tid } of serverTasks(s)) assert.equal(idsOfTask(pid, tid).uid[1], nobodyUid, `restarted server ${pid}/task/${tid} euid`);

    const v = await stat(victim);
    t.diagnostic(`symlink target after restart: uid ${v.uid}, link itself: uid ${(await lstat(join(s.dataDir, "planted-link"))).uid}`);
    assert.equal(v.uid, 0, "the root primary chowned the target of a symlink inside the data directory");
  });
});
