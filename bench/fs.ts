// The file system a bench keeps its servers' files on (spools, Postfix's
// queue, Maildirs): os.tmpdir(), unless that is an ext4 without a journal.
//
// Why: ext4 without a journal (this machine's root file system, made so by
// its image; every distribution's installer makes ext4 with one) does not
// reuse an inode freed in the last 60 to 300 s (fs/ext4/ialloc.c,
// recently_deleted(), checked only when there is no journal). Each new file
// then scans past every inode the earlier runs deleted, so a server that
// creates and deletes a file per message gets slower with every run of a
// bench: Postfix's queue files measured 1.45, 1.86, 2.02, 2.20 ms of CPU per
// message over four runs at 1 msg/conn, the extra time in cleanup's
// find_inode_bit()/recently_deleted() (perf), against 1.09-1.44 ms and a
// steady rate on a journaled ext4. Wardmail's spool is one SQLite file and
// makes no file per message, so the ratio against Postfix was flattered;
// Maildir delivery pays it on both sides. A mail server runs on a journaled
// file system, so that is what the benches measure on: with `--fs auto` (the
// default), where os.tmpdir() is an ext4 without a journal and the bench
// runs as root with loop devices, it makes a journaled ext4 (mkfs.ext4's
// defaults, inode tables written at once so no lazy init runs in the
// background) in a sparse image file (up to 8 GiB, at most 80 % of the free
// space), mounts it for the bench's lifetime and
// points TMPDIR at it; its loop and jbd2 threads count as "other" CPU, for
// neither server. `--fs host` keeps os.tmpdir() as it is (the earlier rounds).
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statfsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export type FsMode = "auto" | "host";

export interface FsInfo {
  /** The directory the bench keeps its files under. */
  readonly dir: string;
  /** The file system's type from /proc/self/mountinfo ("ext4", "tmpfs", ...). */
  readonly type: string;
  /** The block device's name ("vda", "loop0"), when it has one. */
  readonly device: string | null;
  /** For ext4: whether it has a journal; null for other types. */
  readonly journaled: boolean | null;
  /** "host": os.tmpdir() as found; "loop": a journaled ext4 this bench mounted. */
  readonly how: "host" | "loop";
}

/** Whether an ext4 whose /proc/fs/ext4/DEV/options text this is has a journal: only a journaled one has a data= mode. */
export function ext4HasJournal(optionsText: string): boolean {
  return /(^|[\s,])data=/.test(optionsText);
}

interface Mount {
  readonly majorMinor: string;
  readonly mountPoint: string;
  readonly type: string;
}

/** The mount holding `dir`, from /proc/self/mountinfo text (longest mount point that contains it). */
export function mountOf(dir: string, mountinfo: string): Mount | null {
  let best: Mount | null = null;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const f = left.split(" ");
    const mountPoint = (f[4] ?? "").replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const type = right.split(" ")[0] ?? "";
    const inside = mountPoint === "/" || dir === mountPoint || dir.startsWith(`${mountPoint}/`);
    if (inside && (best === null || mountPoint.length >= best.mountPoint.length)) best = { majorMinor: f[2] ?? "", mountPoint, type };
  }
  return best;
}

/** What file system `dir` is on (Linux; elsewhere type "unknown"). */
export function fsInfo(dir: string, how: "host" | "loop" = "host"): FsInfo {
  let mount: Mount | null = null;
  try {
    mount = mountOf(path.resolve(dir), readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    /* not Linux */
  }
  let device: string | null = null;
  try {
    if (mount) device = path.basename(readlinkSync(`/sys/dev/block/${mount.majorMinor}`));
  } catch {
    /* no block device (tmpfs, overlay) */
  }
  let journaled: boolean | null = null;
  if (mount?.type === "ext4" && device !== null) {
    try {
      journaled = ext4HasJournal(readFileSync(`/proc/fs/ext4/${device}/options`, "utf8"));
    } catch {
      /* unknown */
    }
  }
  return { dir, type: mount?.type ?? "unknown", device, journaled, how };
}

export function describeFs(f: FsInfo): string {
  const kind = f.type === "ext4" ? `ext4 ${f.journaled === true ? "with a journal" : f.journaled === false ? "WITHOUT a journal" : "(journal unknown)"}` : f.type;
  return `files under ${f.dir}: ${kind}${f.device ? ` on ${f.device}` : ""}${f.how === "loop" ? " (mounted by this bench)" : ""}`;
}

function canMountLoop(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (!existsSync("/dev/loop-control")) return "no /dev/loop-control";
  for (const bin of ["mkfs.ext4", "mount", "umount"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    } catch {
      return `no ${bin}`;
    }
  }
  return null;
}

/**
 * Chooses the bench's file system (module comment) and sets process.env.TMPDIR
 * when it mounts one; the mount is undone when the process exits. Prints what
 * it chose, and a warning when it keeps an ext4 without a journal.
 */
export function prepareBenchFs(mode: FsMode, log: (line: string) => void = console.log, sizeMiB?: number): FsInfo {
  const host = fsInfo(os.tmpdir());
  if (mode === "host" || host.type !== "ext4" || host.journaled !== false) {
    log(`bench ${describeFs(host)}`);
    if (host.journaled === false) log("  warning: ext4 without a journal skips recently freed inodes: servers that make a file per message get slower run by run (bench/fs.ts)");
    return host;
  }
  const why = canMountLoop();
  if (why !== null) {
    log(`bench ${describeFs(host)}`);
    log(`  warning: cannot mount a journaled ext4 for the bench (${why}): servers that make a file per message get slower run by run (bench/fs.ts)`);
    return host;
  }
  // Sparse: it takes the disk space the bench writes. Up to 8 GiB, never more than 80 % of what is free.
  const free = statfsSync(os.tmpdir());
  const size = sizeMiB ?? Math.min(8192, Math.floor((free.bavail * free.bsize * 0.8) / 1048576));
  if (sizeMiB === undefined && size < 512) {
    log(`bench ${describeFs(host)}`);
    log(`  warning: only ${size} MiB of the free space would go to a journaled ext4 image (at least 512 needed): servers that make a file per message get slower run by run (bench/fs.ts)`);
    return host;
  }
  const base = mkdtempSync(path.join(os.tmpdir(), "wm-benchfs-"));
  const image = path.join(base, "fs.img");
  const dir = path.join(base, "mnt");
  try {
    chmodSync(base, 0o755); // the servers' users (postfix, vmail) pass through it to their directories
    execFileSync("truncate", ["-s", `${size}M`, image]);
    execFileSync("mkfs.ext4", ["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image], { stdio: ["ignore", "ignore", "pipe"] });
    mkdirSync(dir);
    execFileSync("mount", ["-o", "loop", image, dir], { stdio: ["ignore", "ignore", "pipe"] });
    chmodSync(dir, 0o1777); // like /tmp: the servers' users make their own directories there
  } catch (e) {
    try {
      execFileSync("umount", [dir], { stdio: "ignore" }); // mounted, then something after it failed
    } catch {
      /* not mounted */
    }
    rmSync(base, { recursive: true, force: true });
    log(`bench ${describeFs(host)}`);
    log(`  warning: cannot mount a journaled ext4 for the bench (${String((e as { stderr?: unknown }).stderr ?? e).trim()}): servers that make a file per message get slower run by run (bench/fs.ts)`);
    return host;
  }
  let undone = false;
  const undo = (): void => {
    if (undone) return;
    undone = true;
    // At exit a server may still hold files there (Postfix is killed by another exit hook):
    // then detach it lazily; the loop device lets go of the image when the last file closes.
    try {
      try {
        execFileSync("umount", [dir], { stdio: "ignore" });
      } catch {
        execFileSync("umount", ["-l", dir], { stdio: "ignore" });
      }
      rmSync(base, { recursive: true, force: true });
    } catch (e) {
      console.error(`bench: could not unmount ${dir} (${String(e)}): umount it and remove ${base} by hand`);
    }
  };
  process.on("exit", undo);
  process.env.TMPDIR = dir;
  const info = fsInfo(dir, "loop");
  log(`bench ${describeFs(info)}; ${describeFs(host).replace(/^files under /, "instead of ")}`);
  return info;
}

/** The --fs option's value (default auto), or undefined when it is not one. */
export function fsModeOf(value: string | undefined): FsMode | undefined {
  const v = value ?? "auto";
  return v === "auto" || v === "host" ? v : undefined;
}
