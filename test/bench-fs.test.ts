// bench/fs.ts: which file system a bench's servers write on, and the journaled ext4 it mounts where os.tmpdir() is an ext4 without a journal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ext4HasJournal, fsInfo, fsModeOf, mountOf } from "../bench/fs.ts";
import { REPO_ROOT } from "../bench/wardmail.ts";

// /proc/fs/ext4/DEV/options of this machine's root (made without a journal) and of a journaled ext4 on a loop device.
const NO_JOURNAL =
  "rw\nbsddf\nnogrpid\nblock_validity\ndioread_nolock\ndiscard\ndelalloc\nnowarn_on_error\nnojournal_checksum\nbarrier\nauto_da_alloc\nuser_xattr\nacl\nnoquota\nerrors=continue\ncommit=5\nmin_batch_time=0\nmax_batch_time=15000\ni_version\nstripe=0\ninode_readahead_blks=32\n";
const JOURNAL =
  "rw\nbsddf\nnogrpid\nblock_validity\ndioread_nolock\nnodiscard\ndelalloc\nnowarn_on_error\njournal_checksum\nbarrier\nauto_da_alloc\nuser_xattr\nacl\nnoquota\nerrors=continue\ncommit=5\nmin_batch_time=0\nmax_batch_time=15000\ni_version\nstripe=0\ndata=ordered\ninode_readahead_blks=32\n";

test("ext4HasJournal: only a journaled ext4 has a data= mode", () => {
  assert.equal(ext4HasJournal(JOURNAL), true);
  assert.equal(ext4HasJournal(NO_JOURNAL), false);
  assert.equal(ext4HasJournal("rw,data=writeback"), true);
  assert.equal(ext4HasJournal("rw,nodata_err_abort"), false);
});

test("mountOf: the longest mount point holding the directory, escaped names decoded", () => {
  const info = [
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard",
    "30 22 0:27 / /tmp rw shared:5 - tmpfs tmpfs rw",
    "31 30 7:1 / /tmp/with\\040space rw shared:6 - ext4 /dev/loop1 rw",
    "32 22 0:28 / /tmpfoo rw - tmpfs tmpfs rw",
  ].join("\n");
  assert.deepEqual(mountOf("/var/spool", info), { majorMinor: "254:0", mountPoint: "/", type: "ext4" });
  assert.deepEqual(mountOf("/tmp/x", info), { majorMinor: "0:27", mountPoint: "/tmp", type: "tmpfs" });
  assert.deepEqual(mountOf("/tmp/with space/a", info), { majorMinor: "7:1", mountPoint: "/tmp/with space", type: "ext4" });
  assert.equal(mountOf("/tmpfoox", info)?.mountPoint, "/", "a mount point is a whole path component");
});

test("fsInfo reads this machine's mounts", { skip: process.platform !== "linux" ? "Linux only (/proc/self/mountinfo)" : false }, () => {
  assert.equal(fsInfo("/proc").type, "proc");
  const tmp = fsInfo(os.tmpdir());
  assert.notEqual(tmp.type, "unknown");
  if (tmp.type === "ext4") assert.equal(typeof tmp.journaled, "boolean");
});

test("fsModeOf: auto by default, host, nothing else", () => {
  assert.equal(fsModeOf(undefined), "auto");
  assert.equal(fsModeOf("host"), "host");
  assert.equal(fsModeOf("tmpfs"), undefined);
});

const loopSkip =
  process.platform !== "linux"
    ? "Linux only"
    : process.getuid?.() !== 0
      ? "mounting a loop file system needs root"
      : !existsSync("/dev/loop-control")
        ? "no loop devices (/dev/loop-control) on this machine"
        : false;

test("prepareBenchFs auto: where os.tmpdir() is an ext4 without a journal it mounts a journaled one for the process's lifetime, else keeps os.tmpdir()", { skip: loopSkip, timeout: 60_000 }, () => {
  const host = fsInfo(os.tmpdir());
  const script = `
    import { prepareBenchFs, fsInfo } from "./bench/fs.ts";
    import { writeFileSync } from "node:fs";
    import os from "node:os";
    const lines = [];
    const f = prepareBenchFs("auto", (l) => lines.push(l), 64);
    writeFileSync(os.tmpdir() + "/probe", "x");
    console.log(JSON.stringify({ f, tmpdir: os.tmpdir(), again: fsInfo(os.tmpdir()), lines }));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: REPO_ROOT, encoding: "utf8", timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { f: { how: string; dir: string; journaled: boolean | null; type: string }; tmpdir: string; again: { journaled: boolean | null }; lines: string[] };
  if (host.type === "ext4" && host.journaled === false && out.f.how === "host") {
    // Loop devices present but mounting refused (a container): the bench says so and goes on on os.tmpdir().
    assert.match(out.lines.join("\n"), /warning: cannot mount a journaled ext4/);
  } else if (host.type === "ext4" && host.journaled === false) {
    assert.equal(out.f.how, "loop");
    assert.equal(out.f.type, "ext4");
    assert.equal(out.f.journaled, true);
    assert.equal(out.tmpdir, out.f.dir, "TMPDIR points at the mounted file system");
    assert.equal(out.again.journaled, true);
    // Undone at exit: no longer mounted, the image and its directory removed.
    assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(` ${out.f.dir} `), "unmounted at exit");
    assert.ok(!existsSync(path.dirname(out.f.dir)), "image directory removed at exit");
  } else {
    assert.equal(out.f.how, "host");
    assert.equal(out.tmpdir, os.tmpdir());
  }
});

test("the benches take --fs and refuse an unknown value", () => {
  for (const bench of ["bench/run.ts", "bench/stack.ts", "bench/outbound.ts"]) {
    const r = spawnSync(process.execPath, [bench, "--fs", "tmpfs"], { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 2, `${bench}: ${r.stderr}`);
    assert.match(r.stderr, /--fs must be auto or host/, bench);
  }
});
