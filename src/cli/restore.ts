/**
 * `wardmail restore DIR`: the inverse of `wardmail backup DIR`. Refuses
 * while a Wardmail server answers on the config's SMTP or submission
 * addresses, and refuses a data directory that is not empty unless --force
 * (which moves it aside as DATA_DIR.before-restore-TIME: nothing is
 * deleted). Before copying anything it checks the manifest
 * (wardmail-backup.json), every SQLite snapshot it lists (present, same
 * size, `PRAGMA integrity_check` ok) and the spool key file. Then it copies
 * what backup writes (the listed databases, spool.keys, dkim/, tls/) into
 * the data directory and the Maildirs to the config's Maildir root, directories 0700 and files 0600, links as links, and gives it all
 * to server.user (when the server drops privileges).
 */
import { existsSync } from "node:fs";
import { lstat, mkdir, readFile, readdir, rename, stat } from "node:fs/promises";
import net from "node:net";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import type { Config, ListenAddress } from "../config/index.ts";
import { KEY_FILE, readKeyFile } from "../queue/index.ts";
import { chownTo } from "../server/index.ts";
import { copyTree, isInside, maildirRoot, type Copied } from "./backup.ts";
import { loadCommandConfig } from "./load-config.ts";
import type { Io } from "./main.ts";

export const RESTORE_HELP = `Usage: wardmail restore DIR [--force] [--config FILE]

Restores a backup made by \`wardmail backup DIR\` into the config's data
directory (and the Maildirs into the config's Maildir root). Stop Wardmail
first: restore refuses while a server answers on the config's smtp,
submission or submissions addresses. Before copying, it checks the list
DIR/wardmail-backup.json, each SQLite snapshot (size, PRAGMA
integrity_check) and the spool key file. Files are restored 0600,
directories 0700, owned by server.user.

Options:
  --force           the data directory is not empty: move it aside to
                    DATA_DIR.before-restore-YYYYMMDDhhmmss first (nothing is deleted)
  --config FILE     config whose data directory to restore (default: embedded defaults)
Exit codes: 0 done, 1 refused (server running, data directory not empty,
damaged or incomplete backup), 2 usage error, 3 cannot read or write.
`;

interface Manifest {
  readonly databases: readonly { path: string; bytes: number }[];
  readonly maildirCopy: string;
  readonly spoolKeys: number;
}

/** A relative path that stays inside its directory. */
function safeRelative(p: unknown): p is string {
  return typeof p === "string" && p !== "" && !isAbsolute(p) && !normalize(p).startsWith("..") && !p.includes("\0");
}

const DATABASE = /^(?:accounts\.sqlite|mta-sts\.sqlite|tlsrpt\.sqlite|spool\/shard-\d{1,4}\.db)$/;

/** The manifest's fields we rely on, checked; a message when it is not a backup list. */
export function parseManifest(text: string): Manifest | string {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return "wardmail-backup.json is not JSON";
  }
  if (typeof m !== "object" || m === null) return "wardmail-backup.json is not an object";
  const o = m as Record<string, unknown>;
  if (!Array.isArray(o.databases)) return "wardmail-backup.json: no databases list";
  const databases: { path: string; bytes: number }[] = [];
  for (const d of o.databases as unknown[]) {
    const e = d as Record<string, unknown> | null;
    if (e === null || typeof e !== "object" || !safeRelative(e.path) || !DATABASE.test(e.path) || typeof e.bytes !== "number" || !Number.isSafeInteger(e.bytes)) {
      return `wardmail-backup.json: bad database entry ${JSON.stringify(d)?.slice(0, 200)}`;
    }
    databases.push({ path: e.path, bytes: e.bytes });
  }
  if (!safeRelative(o.maildirCopy)) return "wardmail-backup.json: bad maildirCopy";
  const spoolKeys = typeof o.spoolKeys === "number" && Number.isSafeInteger(o.spoolKeys) ? o.spoolKeys : 0;
  return { databases, maildirCopy: o.maildirCopy, spoolKeys };
}

/** Whether something accepts connections on addr (a wildcard address is asked on loopback). */
function answers(addr: ListenAddress): Promise<boolean> {
  const host = addr.host === "0.0.0.0" ? "127.0.0.1" : addr.host === "::" ? "::1" : addr.host;
  return new Promise((done) => {
    const s = net.connect({ host, port: addr.port });
    const finish = (v: boolean): void => {
      s.destroy();
      done(v);
    };
    s.setTimeout(1000, () => finish(false));
    s.once("connect", () => finish(true));
    s.once("error", () => finish(false));
  });
}

export async function runningOn(config: Config): Promise<ListenAddress | undefined> {
  for (const a of [...config.smtp.listen, ...config.submission.listen, ...config.submissions.listen]) if (await answers(a)) return a;
  return undefined;
}

/** Checks the backup in dir; resolves with the manifest or the reason it is refused. */
export async function checkBackup(dir: string): Promise<Manifest | string> {
  let text: string;
  try {
    text = await readFile(join(dir, "wardmail-backup.json"), "utf8");
  } catch {
    return `${dir} has no wardmail-backup.json: not a backup made by wardmail backup`;
  }
  const manifest = parseManifest(text);
  if (typeof manifest === "string") return manifest;
  for (const d of manifest.databases) {
    const path = join(dir, d.path);
    const size = await stat(path).then((s) => s.size, () => -1);
    if (size < 0) return `${d.path} is listed but missing`;
    if (size !== d.bytes) return `${d.path} has ${size} bytes, the list says ${d.bytes}`;
    let result: string;
    try {
      const db = new DatabaseSync(path, { readOnly: true });
      try {
        result = (db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[]).map((r) => r.integrity_check).join("; ");
      } finally {
        db.close();
      }
    } catch (err) {
      result = err instanceof Error ? err.message : String(err);
    }
    if (result !== "ok") return `${d.path} fails the integrity check: ${result.slice(0, 300)}`;
  }
  if (manifest.spoolKeys > 0) {
    let keys: ReturnType<typeof readKeyFile>;
    try {
      keys = readKeyFile(dir);
    } catch (err) {
      return `${KEY_FILE} is unreadable: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (keys === undefined || keys.keys.length < manifest.spoolKeys) return `${KEY_FILE} is missing or holds fewer keys than the ${manifest.spoolKeys} listed: the queue could not be read`;
  }
  return manifest;
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

export async function restoreCommand(args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { config: { type: "string", short: "c" }, force: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    io.err(`wardmail restore: ${err instanceof Error ? err.message : String(err)}\n\n${RESTORE_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(RESTORE_HELP);
    return 0;
  }
  const source = positionals[0];
  if (source === undefined || positionals.length > 1) {
    io.err(`wardmail restore: expected exactly one DIR\n\n${RESTORE_HELP}`);
    return 2;
  }
  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  const data = config.server.dataDir;
  const dir = resolve(source);
  const no = (message: string): number => {
    io.err(`wardmail restore: ${message}\n`);
    return 1;
  };
  if (dir === data || isInside(dir, data) || isInside(data, dir)) {
    io.err(`wardmail restore: ${dir} and the data directory ${data} overlap; expected a backup elsewhere\n`);
    return 2;
  }
  const manifest = await checkBackup(dir);
  if (typeof manifest === "string") return no(`${manifest}; nothing restored`);
  const running = await runningOn(config);
  if (running !== undefined) return no(`a server answers on ${running.host}:${running.port}: stop Wardmail before restoring; nothing restored`);

  const mail = maildirRoot(config);
  try {
    const entries = existsSync(data) ? await readdir(data) : [];
    if (entries.length > 0) {
      if (values.force !== true) return no(`the data directory ${data} is not empty; restore into an empty one, or give --force to move it aside first`);
      const aside = `${data}.before-restore-${stamp(new Date())}`;
      await rename(data, aside);
      io.out(`the previous data directory is now ${aside}\n`);
    }
    if (!isInside(mail, data) && existsSync(mail) && (await readdir(mail)).length > 0) {
      return no(`the Maildir root ${mail} is not empty; empty it or move it aside first`);
    }
    await mkdir(data, { recursive: true, mode: 0o700 });
    const copied: Copied = { databases: [], files: 0, bytes: 0, skipped: [] };
    const mailCopy = normalize(manifest.maildirCopy);
    // Only what backup writes: the listed databases, the spool keys, DKIM keys, certificates (and the Maildirs below).
    for (const d of manifest.databases) {
      await mkdir(dirname(join(data, d.path)), { recursive: true, mode: 0o700 });
      await copyTree(join(dir, d.path), join(data, d.path), copied, false);
    }
    for (const name of [KEY_FILE, "dkim", "tls"]) if (existsSync(join(dir, name))) await copyTree(join(dir, name), join(data, name), copied, false);
    const known = new Set(["wardmail-backup.json", mailCopy, KEY_FILE, "dkim", "tls", ...manifest.databases.map((d) => d.path.split("/")[0] ?? "")]);
    const other = (await readdir(dir)).filter((n) => !known.has(n)).sort();
    if (other.length > 0) io.out(`not restored (not written by wardmail backup): ${other.join(", ")}\n`);
    if (existsSync(join(dir, mailCopy)) && (await lstat(join(dir, mailCopy))).isDirectory()) {
      await copyTree(join(dir, mailCopy), mail, copied, true);
      if (!isInside(mail, data)) await chownTo(config, mail);
    }
    await chownTo(config, data);
    io.out(`${manifest.databases.length} databases checked (integrity ok), ${copied.files} files, ${copied.bytes} bytes restored into ${data}\n`);
  } catch (err) {
    io.err(`wardmail restore: restore failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  return 0;
}
