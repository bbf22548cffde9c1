/**
 * The encrypted spool against a running Wardmail (issue 14): messages sent
 * with swaks wait in the queue (their relay is a closed loopback port), and
 * a random canary from their subject, body, sender and recipient address is
 * nowhere in the spool directory: `grep -r` over every file there (the
 * shard database, its -wal and -shm) and `sqlite3 .dump` (SQLite's own
 * program) find nothing. `wardmail queue show` still shows them decrypted.
 * `wardmail spool rotate-key` while the server runs: the next record names
 * the new key, the old ones stay readable, `spool keys` shows both needed.
 * A record changed in the database (one byte of its sealed content) is set
 * aside when the worker reads it: logged, listed by `wardmail queue damaged`
 * and counted by `queue list`; the others stay queued.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { swaks, waitForLog } from "./peers/submission.ts";

const SQLITE_MISSING = binaryMissing("sqlite3", ["-version"], "sqlite3", { exitZero: true });
const SWAKS_MISSING = binaryMissing("swaks", ["--version"], "swaks", { exitZero: true });

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Listed {
  id: string;
  state: string;
  to: string[];
}

describe("encrypted spool", { skip: peerSkip(SWAKS_MISSING) }, () => {
  let w: Wardmail;
  const canary = randomBytes(16).toString("hex");
  const ids: string[] = [];

  const queueList = async (): Promise<Listed[]> => {
    const r = await w.cli(["queue", "list", "--json", "--config", w.configPath]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Listed[];
  };
  const waitDeferred = async (n: number): Promise<Listed[]> => {
    let list: Listed[] = [];
    for (let i = 0; i < 150; i++) {
      list = await queueList();
      if (list.filter((e) => e.state === "deferred").length >= n) break;
      await sleep(100);
    }
    return list;
  };
  const send = async (i: number): Promise<string> => {
    const r = await swaks([
      "--server", `127.0.0.1:${w.smtpPort}`,
      "--from", `s${i}-${canary}@sender.test`,
      "--to", `r${i}-${canary}@nowhere.test`,
      "--header", `Subject: canary ${canary}`,
      "--body", `The canary is ${canary} (message ${i}).`,
    ]);
    const id = /queued as (\S+)/.exec(r.out)?.[1];
    assert.ok(id, r.out);
    return id;
  };

  before(async () => {
    const port = await closedPort();
    w = await startWardmail({
      workers: 1,
      extra: [
        "[relay]",
        'trusted_networks = ["127.0.0.1/32"]',
        "[[outbound.relays]]",
        'domains = ["nowhere.test"]',
        `host = "127.0.0.1:${port}"`,
        'tls = "may"',
        "[queue]",
        "retry_min = 3600",
        "",
      ].join("\n"),
    });
    for (let i = 0; i < 3; i++) ids.push(await send(i));
    const list = await waitDeferred(3);
    assert.deepEqual(list.filter((e) => e.state === "deferred").map((e) => e.id).sort(), [...ids].sort(), w.output().slice(-3000));
  });

  after(async () => {
    await w.stop();
    await w.cleanup();
  });

  test("the canary is in no file under the spool directory (grep -r), and the key file is 0600 outside it", () => {
    const spool = join(w.dataDir, "spool");
    const files = spawnSync("ls", ["-a", spool], { encoding: "utf8" }).stdout;
    assert.match(files, /shard-0\.db-wal/, "the WAL is there and looked at");
    // Sender, recipients and the relay's refusal are in the records too: none of it in clear.
    for (const needle of [canary, "nowhere.test", "sender.test", "Connection refused", "ECONNREFUSED"]) {
      const g = spawnSync("grep", ["-r", "-l", "-a", "-F", needle, spool], { encoding: "utf8" });
      assert.equal(g.status, 1, `${needle} found in: ${g.stdout}${g.stderr}`);
    }
    assert.equal(statSync(join(w.dataDir, "spool.keys")).mode & 0o777, 0o600);
  });

  test("sqlite3's own dump of the spool shows no plaintext", { skip: peerSkip(SQLITE_MISSING) }, () => {
    const dump = spawnSync("sqlite3", ["-readonly", join(w.dataDir, "spool", "shard-0.db"), ".dump"], { encoding: "latin1", timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /INSERT INTO messages/);
    assert.ok(!dump.stdout.includes(canary));
    assert.ok(!dump.stdout.includes(Buffer.from(canary).toString("hex").toUpperCase()), "not even as a hex blob");
  });

  test("wardmail queue show decrypts: envelope, headers and, with --content, the body", async () => {
    const r = await w.cli(["queue", "show", ids[0]!, "--json", "--content", "--config", w.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout) as { from: string; to: string[]; headers: string; content: string; lastError?: string; received: { clientIp: string } };
    assert.equal(m.from, `s0-${canary}@sender.test`);
    assert.deepEqual(m.to, [`r0-${canary}@nowhere.test`]);
    assert.match(m.headers, new RegExp(`Subject: canary ${canary}`));
    assert.match(m.content, new RegExp(`The canary is ${canary}`));
    assert.equal(m.received.clientIp, "127.0.0.1");
    assert.ok(m.lastError, "the deferral reason is kept (sealed) and shown");
  });

  test("wardmail spool rotate-key while serving: the next record uses the new key, the old ones stay readable", async () => {
    const r = await w.cli(["spool", "rotate-key", "--json", "--config", w.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { added: 2, current: 2, removed: [] });
    assert.equal(statSync(join(w.dataDir, "spool.keys")).mode & 0o777, 0o600);
    await sleep(1200); // the worker looks at the key file at most once a second
    const fresh = await send(3);
    const list = await waitDeferred(4);
    assert.deepEqual(list.map((e) => e.id).sort(), [...ids, fresh].sort());
    const db = new DatabaseSync(join(w.dataDir, "spool", "shard-0.db"), { readOnly: true, timeout: 5000 });
    try {
      const keyOf = (id: string): number => Buffer.from(db.prepare("SELECT envelope FROM messages WHERE id = ?").get(id)?.envelope as Uint8Array).readUInt32BE(1);
      assert.equal(keyOf(fresh), 2);
      assert.equal(keyOf(ids[0]!), 1);
    } finally {
      db.close();
    }
    const keys = await w.cli(["spool", "keys", "--json", "--config", w.configPath]);
    assert.deepEqual((JSON.parse(keys.stdout) as { id: number; current: boolean; needed: boolean }[]).map((k) => [k.id, k.current, k.needed]), [[1, false, true], [2, true, true]]);
    // Nothing to prune: key 1 is still needed by queued records.
    const prune = await w.cli(["spool", "rotate-key", "--prune-only", "--json", "--config", w.configPath]);
    assert.deepEqual(JSON.parse(prune.stdout), { current: 2, removed: [] });
    ids.push(fresh);
  });

  test("a record changed in the database is set aside when read: logged, listed as damaged, never delivered", async () => {
    const victim = ids[1]!;
    const db = new DatabaseSync(join(w.dataDir, "spool", "shard-0.db"), { timeout: 5000 });
    try {
      const c = Buffer.from(db.prepare("SELECT content FROM contents WHERE message_id = ?").get(victim)?.content as Uint8Array);
      c[c.length - 40] = c[c.length - 40]! ^ 0x20;
      db.prepare("UPDATE contents SET content = ? WHERE message_id = ?").run(c, victim);
    } finally {
      db.close();
    }
    // Due now: the worker claims it, and finds it damaged.
    const retry = await w.cli(["queue", "retry", victim, "--config", w.configPath]);
    assert.equal(retry.code, 0, retry.stderr);
    const line = await waitForLog(() => w.output(), "damaged spool record moved aside", (l) => l.queueId === victim, 15_000);
    assert.ok(line, w.output().slice(-3000));
    assert.match(String(line.reason), /^content fails authentication/);
    const damaged = await w.cli(["queue", "damaged", "--json", "--config", w.configPath]);
    assert.equal(damaged.code, 0, damaged.stderr);
    assert.deepEqual((JSON.parse(damaged.stdout) as { id: string; reason: string }[]).map((d) => d.id), [victim]);
    const text = await w.cli(["queue", "list", "--config", w.configPath]);
    assert.match(text.stdout, /^1 damaged record set aside \(wardmail queue damaged\)$/m);
    assert.deepEqual((await queueList()).map((e) => e.id).sort(), ids.filter((id) => id !== victim).sort());
    // The set-aside copy still needs key 1: it is kept.
    const keys = await w.cli(["spool", "keys", "--json", "--config", w.configPath]);
    assert.ok((JSON.parse(keys.stdout) as { id: number; needed: boolean }[]).some((k) => k.id === 1 && k.needed));
  });

  test("wardmail spool: exit 1 with a clear message where serve never ran (no key file); exit 2 for a wrong action", async () => {
    const config = join(w.dir, "empty.toml");
    await writeFile(config, `[server]\ndata_dir = ${JSON.stringify(join(w.dir, "empty-data"))}\n`);
    const none = await w.cli(["spool", "rotate-key", "--config", config]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /no key file .*spool\.keys \(wardmail serve creates it on its first start\)/);
    const bad = await w.cli(["spool", "rotate", "--config", config]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown action 'rotate'/);
  });
});
