/**
 * Least privilege: when Wardmail is started as root with `server.user` set,
 * the data directory is given to that user, the listeners are bound and the
 * keys loaded while still root, and then the whole process (every thread:
 * glibc applies setuid/setgid to all threads) drops to that user and group
 * for good. Without `server.user`, or when not root, nothing changes.
 */
import { execFileSync } from "node:child_process";
import { lchown, lstat, readdir, realpath } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import type { Logger } from "../log/index.ts";

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** True when this process will drop to config.server.user. */
export function willDrop(config: Config): boolean {
  return config.server.user !== "" && isRoot();
}

function ids(config: Config): { uid: number; gid: number } {
  const { user, group } = config.server;
  const uid = /^\d+$/.test(user) ? Number(user) : Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
  let gid: number;
  if (group === "") gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
  else if (/^\d+$/.test(group)) gid = Number(group);
  else gid = Number(execFileSync("getent", ["group", group], { encoding: "utf8" }).split(":")[2]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`cannot resolve user ${user} / group ${group}`);
  return { uid, gid };
}

/** Gives the tree under dir to the configured user (only when we will drop to it). */
export async function chownTo(config: Config, dir: string): Promise<void> {
  if (!willDrop(config)) return;
  const { uid, gid } = ids(config);
  const walk = async (p: string, top: boolean): Promise<void> => {
    try {
      // lchown: the tree is writable by that user, so a symlink in it must not
      // make root chown its target (e.g. data/x -> /etc/shadow).
      await lchown(p, uid, gid);
      const st = await lstat(p);
      if (st.isDirectory()) for (const e of await readdir(p)) await walk(join(p, e), false);
    } catch (err) {
      // Another worker's SQLite may remove a file it made (a shard's -journal)
      // between our readdir and lchown: what is gone needs no owner.
      if (top || (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  };
  await walk(await realpath(dir), true); // the operator's data_dir may itself be a symlink: follow that one only
}

/** Drops the process to config.server.user/group. Call from the main thread once everything is bound. */
export function dropPrivileges(config: Config, log: Logger): void {
  if (!willDrop(config)) return;
  const { uid, gid } = ids(config);
  process.setgid?.(gid);
  (process as { initgroups?: (user: string | number, group: string | number) => void }).initgroups?.(config.server.user, gid);
  process.setuid?.(uid);
  if (process.getuid?.() !== uid || process.getgid?.() !== gid) throw new Error("privilege drop did not take effect");
  log.info({ user: config.server.user, uid, gid }, "privileges dropped");
}

/** The uid and gid of config.server.user (and server.group), e.g. for the userdb answer of `wardmail dovecot auth`. */
export const serverIds = ids;
