/**
 * `wardmail spool rotate-key [--prune] | keys [--json] [--config FILE]`: the
 * keys that encrypt the spool at rest (src/queue/keyring.ts).
 *
 * rotate-key adds a new current key to `<data_dir>/spool.keys`; safe while
 * the server runs: its workers look at the key file at most once a second
 * before sealing, so new records use the new key within a second, and a
 * record naming a key they have not read yet makes them re-read it. Old keys
 * stay until no record needs them: `--prune` (alone or with rotate-key)
 * removes retired keys that no record of any shard names, the damaged table
 * included, once retired for more than a minute. As root with server.user
 * set, the new file is given to the server's user before it replaces the old.
 */
import { parseArgs } from "node:util";
import { chownSync, existsSync, lstatSync } from "node:fs";
import { join } from "node:path";
import { PRUNE_GRACE_MS, QueueAdmin, SpoolKeyring } from "../queue/index.ts";
import type { Config } from "../config/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";
import { willDrop } from "../server/index.ts";

export const SPOOL_HELP = `Usage: wardmail spool <action> [--json] [--config FILE]

Actions:
  rotate-key [--prune]  add a new spool key and make it current (new records use it
                        within a second, also while the server runs); old keys stay
                        as long as a record needs them
  rotate-key --prune-only
                        only remove retired keys no record needs (retired over a minute ago)
  keys                  the keys: id, created, retired, current, needed by records

Options:
  --prune           with rotate-key: then remove retired keys no record needs
  --prune-only      remove such keys without adding one
  --json            machine-readable output
  --config FILE     config whose data directory to use (default: embedded defaults)
Exit codes: 0 done, 1 no key file (the server creates it on its first start),
2 usage error, 3 cannot read or write the key file or the spool.
`;

export async function spoolCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      config: { type: "string", short: "c" },
      prune: { type: "boolean" },
      "prune-only": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(SPOOL_HELP);
    return 0;
  }
  const [action, ...extra] = positionals;
  const pruneFlags = values.prune === true || values["prune-only"] === true;
  if (action === undefined || !["rotate-key", "keys"].includes(action) || extra.length > 0 || (action === "keys" && pruneFlags)) {
    io.err(`wardmail spool: ${action === undefined ? "missing action" : ["rotate-key", "keys"].includes(action) ? "wrong arguments" : `unknown action '${action}'`}\n\n${SPOOL_HELP}`);
    return 2;
  }
  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  const dataDir = config.server.dataDir;
  let ring: SpoolKeyring | undefined;
  try {
    ring = SpoolKeyring.open(dataDir, { create: false });
  } catch (err) {
    io.err(`wardmail spool: ${(err as Error).message}\n`);
    return 3;
  }
  if (!ring) {
    io.err(`wardmail spool: no key file ${join(dataDir, "spool.keys")} (wardmail serve creates it on its first start)\n`);
    return 1;
  }
  const prepare = ownerFor(config, ring.path);
  const inUse = (): Set<number> => {
    if (!existsSync(join(dataDir, "spool"))) return new Set();
    const admin = QueueAdmin.open(dataDir, { keyring: ring });
    try {
      return admin.keysInUse();
    } finally {
      admin.close();
    }
  };
  try {
    if (action === "keys") {
      const used = inUse();
      const keys = ring.list().map((k) => ({ ...k, needed: used.has(k.id) }));
      if (values.json) io.out(JSON.stringify(keys) + "\n");
      else {
        for (const k of keys) {
          io.out(`${String(k.id).padStart(4)}  created ${new Date(k.created).toISOString()}${k.retired !== undefined ? `  retired ${new Date(k.retired).toISOString()}` : ""}${k.current ? "  current" : ""}${k.needed ? "  needed by records" : ""}\n`);
        }
      }
      return 0;
    }
    const added = values["prune-only"] === true ? undefined : ring.rotate({ prepare });
    const removed = pruneFlags ? ring.prune(inUse, { prepare, graceMs: PRUNE_GRACE_MS }) : [];
    if (values.json) io.out(JSON.stringify({ ...(added !== undefined ? { added } : {}), current: ring.currentKeyId, removed }) + "\n");
    else {
      if (added !== undefined) io.out(`spool key ${added} added and current; new records use it within a second\n`);
      if (pruneFlags) io.out(removed.length > 0 ? `removed retired keys no record needs: ${removed.join(", ")}\n` : "no key removed (each retired key is still needed by a record, or was retired less than a minute ago)\n");
    }
    return 0;
  } catch (err) {
    io.err(`wardmail spool: ${(err as Error).message}\n`);
    return 3;
  }
}

/** As root with server.user: the new key file gets the owner of the one it replaces (the server's user). */
function ownerFor(config: Config, path: string): ((tmp: string) => void) | undefined {
  if (!willDrop(config)) return undefined;
  return (tmp) => {
    const st = lstatSync(path);
    chownSync(tmp, st.uid, st.gid);
  };
}
