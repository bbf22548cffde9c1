/**
 * `wardmail backup DIR`: a copy of everything Wardmail keeps in its data
 * directory, taken while the server runs, laid out like the data directory
 * so that restoring is copying it back (docs/deploy.md).
 *
 * - SQLite databases (spool shards, accounts, MTA-STS cache, TLS-RPT counts)
 *   with `VACUUM INTO`: each a consistent snapshot as of one read
 *   transaction, WAL included, while the server keeps writing.
 * - DKIM keys and the self-signed certificate: copied file by file.
 * - The spool key file `spool.keys`: without it the copied queue (encrypted
 *   at rest) cannot be read, so it is in the backup, which is therefore as
 *   secret as the data directory (docs/deploy.md).
 * - Maildirs (under `local.maildir`'s root): `new/` and `cur/` of every
 *   folder, not `tmp/` (deliveries in progress). A message delivered or
 *   moved by an IMAP server during the copy may be missing from it or be
 *   there twice (as new and as cur); nothing is changed in the source.
 *
 * DIR must not exist, or be an empty directory; it is created 0700 (and
 * missing parents too) and every file in it 0600. Symbolic links are copied as links, never
 * followed. A file `wardmail-backup.json` lists what was copied.
 */
import { chmod, copyFile, lstat, mkdir, readdir, readlink, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import type { Config } from "../config/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";
import { KEY_FILE, readKeyFile, writeKeyUnion } from "../queue/index.ts";

export const BACKUP_HELP = `Usage: wardmail backup DIR [--config FILE]

Copies what Wardmail keeps into DIR, laid out like the data directory, while
the server runs: the queue (spool/shard-N.db), accounts.sqlite, mta-sts.sqlite
and tlsrpt.sqlite as consistent SQLite snapshots (VACUUM INTO), the DKIM keys
(dkim/), the certificates in tls/ (self-signed, ACME with its keys), the
spool key (spool.keys: the queue is encrypted with it, so the backup is as
secret as the data directory) and the Maildirs (new/ and cur/ of every
folder; mail delivered or moved during the copy may be missing). DIR
must not exist or be empty; it is created 0700, its files 0600. A list of what
was copied goes to DIR/wardmail-backup.json.

To restore: stop Wardmail, \`wardmail restore DIR\`, start it. The config
file and certificates outside the data directory are not copied.

Options:
  --config FILE     config whose data directory to copy (default: embedded defaults)
Exit codes: 0 done, 1 DIR exists and is not empty, 2 usage error,
3 cannot read the config or the data directory, or cannot write DIR.
`;

export interface Copied {
  databases: { path: string; bytes: number }[];
  files: number;
  bytes: number;
  skipped: string[];
  /** Keys in the copied spool key file (0: none copied). */
  spoolKeys?: number;
}

const DATABASES = ["accounts.sqlite", "mta-sts.sqlite", "tlsrpt.sqlite"];

export async function backupCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    io.out(BACKUP_HELP);
    return 0;
  }
  const target = positionals[0];
  if (target === undefined || positionals.length > 1) {
    io.err(`wardmail backup: expected exactly one DIR\n\n${BACKUP_HELP}`);
    return 2;
  }
  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  const data = config.server.dataDir;
  const dir = resolve(target);
  if (!existsSync(data)) {
    io.err(`wardmail backup: the data directory ${data} does not exist\n`);
    return 3;
  }
  if (isInside(dir, data) || dir === data) {
    io.err(`wardmail backup: ${dir} is inside the data directory ${data}; expected a directory elsewhere\n`);
    return 2;
  }
  try {
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EEXIST") return cannot(io, `cannot create ${dir}`, err);
    if (!(await stat(dir)).isDirectory() || (await readdir(dir)).length > 0) {
      io.err(`wardmail backup: ${dir} exists and is not an empty directory; expected a new one\n`);
      return 1;
    }
  }
  const copied: Copied = { databases: [], files: 0, bytes: 0, skipped: [] };
  try {
    for (const name of DATABASES) await snapshot(data, dir, name, copied);
    // The spool key file is read before and after the shard snapshots and both are kept (writeKeyUnion).
    const keysBefore = readKeyFile(data);
    for (const name of (await readdir(join(data, "spool")).catch(() => [] as string[])).sort()) {
      if (/^shard-\d+\.db$/.test(name)) await snapshot(data, dir, join("spool", name), copied);
    }
    const keysAfter = readKeyFile(data);
    const keySets = [keysBefore, keysAfter].filter((k) => k !== undefined);
    if (keySets.length > 0) {
      copied.spoolKeys = writeKeyUnion(join(dir, KEY_FILE), keySets);
      copied.files++;
    }
    if (existsSync(join(data, "dkim"))) await copyTree(join(data, "dkim"), join(dir, "dkim"), copied, false);
    if (existsSync(join(data, "tls"))) await copyTree(join(data, "tls"), join(dir, "tls"), copied, false);
    const mail = maildirRoot(config);
    const mailTarget = isInside(mail, data) ? join(dir, relative(data, mail)) : join(dir, "maildirs");
    if (existsSync(mail)) await copyTree(mail, mailTarget, copied, true);
    const manifest = {
      created: new Date().toISOString(),
      dataDir: data,
      maildirRoot: mail,
      maildirCopy: relative(dir, mailTarget),
      databases: copied.databases,
      files: copied.files,
      fileBytes: copied.bytes,
      vanished: copied.skipped,
      spoolKeys: copied.spoolKeys ?? 0,
    };
    await writeFile(join(dir, "wardmail-backup.json"), JSON.stringify(manifest, null, 2) + "\n", { mode: 0o600 });
  } catch (err) {
    return cannot(io, "backup failed", err);
  }
  for (const d of copied.databases) io.out(`${d.path}: ${d.bytes} bytes (snapshot)\n`);
  io.out(`${copied.files} files, ${copied.bytes} bytes copied (DKIM keys, certificates, Maildirs)\n`);
  if (copied.spoolKeys !== undefined) io.out(`${KEY_FILE}: ${copied.spoolKeys} spool keys (the backup holds the key to its queue: keep it as secret as the data directory)\n`);
  if (copied.skipped.length > 0) io.out(`${copied.skipped.length} files vanished during the copy (moved or deleted meanwhile)\n`);
  io.out(`backup in ${dir}\n`);
  return 0;
}

function cannot(io: Io, what: string, err: unknown): number {
  io.err(`wardmail backup: ${what}: ${err instanceof Error ? err.message : String(err)}\n`);
  return 3;
}

export function isInside(path: string, dir: string): boolean {
  const r = relative(dir, path);
  return r !== "" && !r.startsWith("..") && !isAbsolute(r);
}

/** The directory above every Maildir: local.maildir up to its first placeholder. */
export function maildirRoot(config: Config): string {
  const template = config.local.maildir;
  const fixed = template.slice(0, template.indexOf("%") < 0 ? template.length : template.indexOf("%"));
  const base = fixed.endsWith("/") ? fixed.slice(0, -1) : dirname(fixed);
  return resolve(config.server.dataDir, base === "" ? "." : base);
}

/** VACUUM INTO: a consistent, compacted copy of data/name as dir/name; nothing when it does not exist. */
async function snapshot(data: string, dir: string, name: string, copied: Copied): Promise<void> {
  const source = join(data, name);
  const target = join(dir, name);
  if (!existsSync(source)) return;
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  // The copy is created 0600 before SQLite writes into it (VACUUM INTO accepts an empty file).
  await writeFile(target, "", { mode: 0o600, flag: "wx" });
  const db = new DatabaseSync(source, { timeout: 10_000 });
  try {
    db.prepare("VACUUM INTO ?").run(target);
  } finally {
    db.close();
  }
  copied.databases.push({ path: name, bytes: (await stat(target)).size });
}

/**
 * Copies a tree (files 0600 with their times, directories 0700, links as
 * links, never followed); a file that vanishes meanwhile is noted, not an error. With
 * `maildirs`, a directory named tmp is created empty: deliveries in progress.
 */
export async function copyTree(source: string, target: string, copied: Copied, maildirs: boolean): Promise<void> {
  let st;
  try {
    st = await lstat(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      copied.skipped.push(source);
      return;
    }
    throw err;
  }
  if (st.isSymbolicLink()) {
    await symlink(await readlink(source), target);
  } else if (st.isDirectory()) {
    await mkdir(target, { recursive: true, mode: 0o700 });
    if (maildirs && source.endsWith("/tmp")) return;
    const names = await readdir(source).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
      copied.skipped.push(source);
      return [] as string[];
    });
    for (const name of names.sort()) await copyTree(join(source, name), join(target, name), copied, maildirs);
  } else if (st.isFile()) {
    try {
      await copyFile(source, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      copied.skipped.push(source);
      return;
    }
    await chmod(target, 0o600);
    await utimes(target, st.atimeMs / 1000, st.mtimeMs / 1000); // `dkim list` dates a key set by its files
    copied.files++;
    copied.bytes += st.size;
  }
}
