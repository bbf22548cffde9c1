/**
 * Storing one message in a Maildir, the way Dovecot expects it.
 *
 * Layout: `<maildir>/{cur,new,tmp}` (created mode 0700 when missing) and
 * Maildir++ subfolders `<maildir>/.<Name>/{cur,new,tmp}` with an empty
 * `maildirfolder` file, e.g. `.Junk`. Delivery follows the Maildir protocol
 * (cr.yp.to/proto/maildir.html): write `tmp/<unique>` with O_EXCL (mode
 * 0600) and O_SYNC (the write returns once it is on disk, as after an
 * fsync), hard-link it into `new/` (link never replaces an existing
 * file, unlike rename), remove the tmp name, fsync `new/` (one fsync shared
 * by concurrent deliveries into the same folder); only then is the delivery
 * reported done. A filesystem without hard links falls back to
 * rename after checking the name is free.
 *
 * Unique names: `<secs>.M<usec>P<pid>Q<n>.<host>,S=<size>` where `<host>`
 * has `/` and `:` escaped as `\057` and `\072` (as Dovecot does) and S= is
 * the file size in bytes, which Dovecot uses instead of stat().
 *
 * The stored file is `Return-Path: <sender>` and `Delivered-To: <rcpt>`
 * lines, then the content exactly as given (CRLF line endings kept; Dovecot
 * reads CRLF files). Addresses come from the SMTP envelope: any CR, LF or
 * NUL in them is refused, so they cannot add header lines.
 * All I/O that can wait for the disk is async: open, writev (synchronous
 * to disk), link, unlink; open and fsync of `new/`, through node:fs's
 * callbacks on plain descriptors (node:fs/promises would make a FileHandle
 * object and several promises for each, for the same system calls). The two
 * close calls, of descriptors already synced, are not waited for (closeNow).
 */
import { close, constants, fsync, link, open, rename, stat, unlink, writev } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";

export interface MaildirMessage {
  /** Envelope sender without angle brackets; "" for the null sender. */
  readonly returnPath: string;
  /** The address the message is delivered to (written as Delivered-To). */
  readonly deliveredTo: string;
  /** Content: CRLF lines, headers first. */
  readonly content: Uint8Array;
}

export interface MaildirOptions {
  /** Maildir++ folder name without the leading dot, e.g. "Junk" or "Archive.2024". Default: INBOX (the root). */
  readonly folder?: string;
  /** Host name used in unique file names (default: os.hostname()). */
  readonly hostname?: string;
}

export interface MaildirResult {
  /** Full path of the file in `new/`. */
  readonly path: string;
  /** Its base name. */
  readonly name: string;
  /** Bytes written (added header lines included). */
  readonly size: number;
}

const ensured = new Set<string>();
let deliveries = 0;

/** Escapes a host name for a Maildir file name as Dovecot does. */
export function escapeHostname(host: string): string {
  return host.replace(/\//g, "\\057").replace(/:/g, "\\072");
}

/** A new unique base name (without the S= part). */
export function uniqueName(host: string = osHostname()): string {
  const nowUs = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const secs = Math.floor(nowUs / 1_000_000);
  const usec = nowUs % 1_000_000;
  deliveries++;
  return `${secs}.M${usec}P${process.pid}Q${deliveries}.${escapeHostname(host)}`;
}

const FOLDER_SEGMENT_RE = /^[^./\\\0-\x1f\x7f]+$/;

/** Checks a Maildir++ folder name ("Junk", "Archive.2024"); returns its directory name (".Junk"). */
export function folderDirName(folder: string): string {
  const segments = folder.split(".");
  if (folder.length > 255 || !segments.every((s) => FOLDER_SEGMENT_RE.test(s))) {
    throw new Error(`bad Maildir++ folder name ${JSON.stringify(folder.slice(0, 80))}`);
  }
  return "." + folder;
}

/**
 * Creates the Maildir (and, when named, one of its Maildir++ folders) when missing, with
 * mode 0700 directories. Returns the folder's path. Fails (ENOTDIR, EEXIST...)
 * when something that is not a directory is in the way.
 */
export async function ensureMaildir(maildir: string, folder?: string): Promise<string> {
  const dir = folder === undefined || folder === "" ? maildir : join(maildir, folderDirName(folder));
  // A folder is only meaningful inside a Maildir: make the root one too.
  const dirs = dir === maildir ? [maildir] : [maildir, dir];
  for (const d of dirs) for (const sub of ["cur", "new", "tmp"]) await mkdir(join(d, sub), { recursive: true, mode: 0o700 });
  if (dir !== maildir) await writeFile(join(dir, "maildirfolder"), "", { mode: 0o600, flag: "a" });
  ensured.add(dir);
  return dir;
}

function headerLine(name: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error(`${name} address contains CR, LF or NUL`);
  return `${name}: ${value}\r\n`;
}

// O_SYNC: each write returns once the data and the metadata needed to read
// it back are on disk (POSIX synchronized I/O file integrity completion, the
// same guarantee as fsync; on Linux the write calls the file system's fsync
// for the range written). The file is written by one writev, so that writev
// returning is the fsync of the whole file, without a call of its own.
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_SYNC;
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY;

type Callback<T> = (err: NodeJS.ErrnoException | null, value: T) => void;

/** One node:fs callback call as a promise (rejects with the errno error as node:fs gives it). */
function fsCall<T>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

const done = (cb: Callback<void>) => (err: NodeJS.ErrnoException | null) => cb(err, undefined);

/**
 * Closing a descriptor whose data is already on disk (or a directory's
 * after its fsync): nothing waits for it. close(2) then only drops the
 * reference, so the delivery goes on (link, report) without a round trip
 * through the thread pool; the call itself still runs there, never on the
 * event loop (on NFS or FUSE a close may wait for the server). An error
 * there cannot undo what is already durable, so it is ignored.
 */
function closeNow(fd: number): void {
  close(fd, () => undefined);
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsCall<number>((cb) => open(dir, OPEN_DIR, cb));
  try {
    await fsCall<void>((cb) => fsync(fd, done(cb)));
  } finally {
    closeNow(fd);
  }
}

const syncing = new Map<string, Promise<void>>();
const waiting = new Map<string, Promise<void>>();

function startDirSync(dir: string): Promise<void> {
  const p: Promise<void> = fsyncDir(dir).finally(() => {
    if (syncing.get(dir) === p) syncing.delete(dir);
  });
  syncing.set(dir, p);
  return p;
}

/**
 * fsync of a directory, shared by concurrent deliveries: a caller gets an
 * fsync that starts after its call (one already waiting, or a new one), so
 * its link is covered, and a burst into one Maildir costs two fsyncs, not N.
 */
function syncDir(dir: string): Promise<void> {
  const queued = waiting.get(dir);
  if (queued) return queued;
  const running = syncing.get(dir);
  if (!running) return startDirSync(dir);
  const next = running
    .catch(() => undefined)
    .then(() => {
      waiting.delete(dir);
      return startDirSync(dir);
    });
  waiting.set(dir, next);
  return next;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsCall((cb) => stat(path, cb));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Delivers one message into `<maildir>[/.<folder>]/new/`, durably.
 * Resolves after the file and the `new/` directory entry are fsynced.
 * Rejects with the filesystem error (errno code kept) on failure; tmp/ is
 * cleaned up. Only a failure after the link (unlinking tmp, fsyncing new/)
 * can leave the file in new/, so a retry may then store it twice: Maildir
 * delivery is at-least-once, never lost.
 */
export async function deliverToMaildir(maildir: string, msg: MaildirMessage, opts: MaildirOptions = {}): Promise<MaildirResult> {
  const head = Buffer.from(
    headerLine("Return-Path", `<${msg.returnPath}>`) + headerLine("Delivered-To", msg.deliveredTo),
    "utf8",
  );
  const size = head.length + msg.content.byteLength;
  const folderKey = opts.folder === undefined || opts.folder === "" ? maildir : join(maildir, folderDirName(opts.folder));
  let dir = folderKey;
  if (!ensured.has(folderKey)) dir = await ensureMaildir(maildir, opts.folder);

  for (let attempt = 0; ; attempt++) {
    const name = `${uniqueName(opts.hostname)},S=${size}`;
    const tmpPath = join(dir, "tmp", name);
    const newPath = join(dir, "new", name);
    let fd: number;
    try {
      fd = await fsCall<number>((cb) => open(tmpPath, CREATE_NEW, 0o600, cb));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The Maildir went away since we created it: make it again, once.
      if (code === "ENOENT" && attempt === 0) {
        ensured.delete(folderKey);
        dir = await ensureMaildir(maildir, opts.folder);
        continue;
      }
      if (code === "EEXIST" && attempt < 5) continue;
      throw err;
    }
    try {
      try {
        // Durable when it returns (O_SYNC, see CREATE_NEW).
        const bytesWritten = await fsCall<number>((cb) => writev(fd, [head, msg.content], cb));
        if (bytesWritten !== size) {
          // A short write to a regular file means the disk is full (or a quota).
          throw Object.assign(new Error(`short write to ${tmpPath}: ${bytesWritten} of ${size} bytes`), { code: "ENOSPC" });
        }
      } finally {
        closeNow(fd);
      }
      let linked = false;
      try {
        await fsCall<void>((cb) => link(tmpPath, newPath, done(cb)));
        linked = true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EEXIST" && attempt < 5) {
          await fsCall<void>((cb) => unlink(tmpPath, done(cb)));
          continue;
        }
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw err;
      }
      if (linked) await fsCall<void>((cb) => unlink(tmpPath, done(cb)));
      else {
        if (await exists(newPath)) throw Object.assign(new Error(`maildir name taken: ${newPath}`), { code: "EEXIST" });
        await fsCall<void>((cb) => rename(tmpPath, newPath, done(cb)));
      }
      await syncDir(join(dir, "new"));
      return { path: newPath, name, size };
    } catch (err) {
      await fsCall<void>((cb) => unlink(tmpPath, done(cb))).catch(() => undefined);
      throw err;
    }
  }
}
