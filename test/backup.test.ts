/**
 * `wardmail backup DIR` against a running server: the queue (a message to a
 * remote address, deferred because the test DNS is a closed port), an
 * account, a DKIM key set and a delivered message are all in the copy. The
 * copied databases pass SQLite's own `PRAGMA integrity_check` (the sqlite3
 * program, not our code), and a data directory restored from the copy gives
 * the same `queue list`, `user list` and `dkim list` as the original, with the
 * same Maildir message byte for byte. A second backup into the same DIR is
 * refused (exit 1), a DIR inside the data directory too (exit 2).
 *
 * `wardmail restore DIR`: refused while the server answers, on a damaged
 * copy (nothing written) and on a non-empty data directory (--force moves
 * it aside); then backup → wipe → restore → serve: the queued message is
 * still queued and is delivered (to a relay sink), the account logs in
 * (swaks AUTH), the Maildir message is intact byte for byte, and the
 * restored tree belongs to server.user.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";
import { binaryMissing, peerSkip, rootMissing } from "./helpers/peers.ts";
import { swaks, swaksReply } from "./peers/submission.ts";
import { startSmtpSink } from "./peers/smtp-sink.ts";
import { generateCertificate } from "../src/tls/index.ts";

const SQLITE_MISSING = binaryMissing("sqlite3", ["-version"], "sqlite3", { exitZero: true });
const SWAKS_MISSING = binaryMissing("swaks", ["--version"], "swaks");

describe("wardmail backup", () => {
  let w: Wardmail;
  let queued = "";
  let backup = "";

  before(async () => {
    w = await startWardmail({ workers: 1, extra: '[local.aliases]\n"fwd@example.test" = ["someone@remote.test"]\n' });
    const replies = await sendOneMessage({ port: w.smtpPort, from: "a@sender.test", to: ["fwd@example.test"], body: "From: a@sender.test\r\nSubject: queued\r\n\r\nstays\r\n" });
    queued = replies.map((r) => /queued as (\S+)/.exec(r.lines[0] ?? "")?.[1]).find((x) => x !== undefined) ?? "";
    assert.ok(queued, JSON.stringify(replies));
    await sendOneMessage({ port: w.smtpPort, from: "a@sender.test", to: ["user@example.test"], body: "From: a@sender.test\r\nSubject: kept\r\n\r\ndelivered\r\n" });
    assert.equal((await w.waitForMail("user@example.test", 1)).length, 1);
    const add = await w.cli(["user", "add", "alice@example.test", "--password-stdin", "--config", w.configPath], "a long password\n");
    assert.equal(add.code, 0, add.stderr);
    const keys = await w.cli(["dkim", "keygen", "--domain", "example.test", "--selector", "bk", "--config", w.configPath]);
    assert.equal(keys.code, 0, keys.stderr);
    // The message is tried once and deferred; it stays in the queue.
    for (let i = 0; i < 100; i++) {
      const list = await w.cli(["queue", "list", "--json", "--config", w.configPath]);
      if ((JSON.parse(list.stdout) as { id: string; state: string }[]).some((e) => e.id === queued && e.state === "deferred")) break;
      await sleep(100);
    }
    backup = join(w.dir, "backups", "first"); // the parent is created too
  });

  after(async () => {
    await w.stop();
    await w.cleanup();
  });

  test("while the server runs: exit 0, the snapshots and files listed, DIR 0700 and its files 0600", async () => {
    const r = await w.cli(["backup", backup, "--config", w.configPath]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^accounts\.sqlite: \d+ bytes \(snapshot\)$/m);
    assert.match(r.stdout, /^spool\/shard-0\.db: \d+ bytes \(snapshot\)$/m);
    assert.match(r.stdout, new RegExp(`^backup in ${backup.replaceAll(".", "\\.")}$`, "m"));
    assert.equal((await stat(backup)).mode & 0o777, 0o700);
    const manifest = JSON.parse(await readFile(join(backup, "wardmail-backup.json"), "utf8")) as { dataDir: string; databases: { path: string }[]; files: number };
    assert.equal(manifest.dataDir, w.dataDir);
    assert.deepEqual(manifest.databases.map((d) => d.path).sort(), ["accounts.sqlite", "mta-sts.sqlite", "spool/shard-0.db", "tlsrpt.sqlite"]);
    // 2 DKIM keys, 2 self-signed files, 1 Maildir message, the spool key file (the queue in the copy is encrypted).
    assert.equal(manifest.files, 6);
    assert.match(r.stdout, /^spool\.keys: 1 spool keys /m);
    for (const f of ["accounts.sqlite", "spool/shard-0.db", "dkim/example.test/bk.rsa.pem", "spool.keys"]) assert.equal((await stat(join(backup, f))).mode & 0o777, 0o600, f);
    assert.deepEqual(await readdir(join(backup, "mail", "example.test", "user")), ["cur", "new", "tmp"]);
  });

  test("the copied databases pass sqlite3's integrity check", { skip: peerSkip(SQLITE_MISSING) }, () => {
    for (const f of ["accounts.sqlite", "spool/shard-0.db", "mta-sts.sqlite", "tlsrpt.sqlite"]) {
      const r = spawnSync("sqlite3", [join(backup, f), "PRAGMA integrity_check;"], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.stdout.trim(), "ok", `${f}: ${r.stdout}${r.stderr}`);
    }
  });

  test("restored into a new data directory: the same queue, accounts, DKIM keys and mail", async () => {
    const restored = join(w.dir, "restored");
    // As docs/deploy.md says: cp -a, without the list.
    const copy = spawnSync("cp", ["-a", `${backup}/.`, restored], { encoding: "utf8" });
    assert.equal(copy.status, 0, copy.stderr);
    await rm(join(restored, "wardmail-backup.json"));
    const config = join(w.dir, "restored.toml");
    await writeFile(config, (await readFile(w.configPath, "utf8")).replace(JSON.stringify(w.dataDir), JSON.stringify(restored)));
    for (const args of [["queue", "list", "--json"], ["user", "list", "--json"], ["dkim", "list", "--json"]]) {
      const [a, b] = await Promise.all([w.cli([...args, "--config", w.configPath]), w.cli([...args, "--config", config])]);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(b.stdout, a.stdout, args.join(" "));
    }
    const queue = JSON.parse((await w.cli(["queue", "list", "--json", "--config", config])).stdout) as { id: string; to: string[] }[];
    assert.deepEqual(queue.map((e) => [e.id, e.to]), [[queued, ["someone@remote.test"]]]);
    const [original] = await w.maildir("user@example.test");
    assert.ok(original !== undefined);
    const mail = join(restored, "mail", "example.test", "user", "new", original.split("/").at(-1) as string);
    assert.deepEqual(await readFile(mail), await readFile(original));
  });

  test("refused: a DIR that is not empty (exit 1), a DIR inside the data directory (exit 2), no DIR (exit 2)", async () => {
    const again = await w.cli(["backup", backup, "--config", w.configPath]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `wardmail backup: ${backup} exists and is not an empty directory; expected a new one\n`);
    const inside = await w.cli(["backup", join(w.dataDir, "bk"), "--config", w.configPath]);
    assert.equal(inside.code, 2);
    assert.match(inside.stderr, /is inside the data directory/);
    const none = await w.cli(["backup", "--config", w.configPath]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^wardmail backup: expected exactly one DIR/);
  });

  test("wardmail restore: refused while serving, on a damaged backup and a non-empty data directory; then backup → wipe → restore → serve", { skip: peerSkip(SWAKS_MISSING) }, async () => {
    const c = ["--config", w.configPath];
    const busy = await w.cli(["restore", backup, ...c]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /a server answers on 127\.0\.0\.1:\d+: stop Wardmail before restoring; nothing restored/);
    const [original] = await w.maildir("user@example.test");
    assert.ok(original !== undefined);
    const mailBytes = await readFile(original);
    assert.equal(await w.stop(), 0);

    // A damaged copy (same size, the SQLite header overwritten) is refused before anything is copied.
    const damaged = join(w.dir, "damaged");
    assert.equal(spawnSync("cp", ["-a", backup, damaged]).status, 0);
    const fh = await open(join(damaged, "accounts.sqlite"), "r+");
    await fh.write(Buffer.from("not a database!!"), 0, 16, 0);
    await fh.close();
    await rm(w.dataDir, { recursive: true, force: true });
    const bad = await w.cli(["restore", damaged, ...c]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /accounts\.sqlite fails the integrity check: .*; nothing restored/);
    assert.equal(await stat(w.dataDir).catch(() => undefined), undefined, "nothing written");

    const r = await w.cli(["restore", backup, ...c]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^4 databases checked \(integrity ok\), \d+ files, \d+ bytes restored into /m);
    for (const f of ["accounts.sqlite", "spool/shard-0.db", "spool.keys", "dkim/example.test/bk.rsa.pem"]) assert.equal((await stat(join(w.dataDir, f))).mode & 0o777, 0o600, f);
    assert.equal((await stat(join(w.dataDir, "spool"))).mode & 0o777, 0o700);
    const again = await w.cli(["restore", backup, ...c]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is not empty; restore into an empty one, or give --force/);
    const forced = await w.cli(["restore", backup, "--force", ...c]);
    assert.equal(forced.code, 0, forced.stderr);
    const aside = /now (\S+)/.exec(forced.stdout)?.[1] ?? "";
    assert.ok((await readdir(aside)).includes("accounts.sqlite"), "the previous data directory is kept aside");

    // Served again, now with a relay (a local SMTP sink) that the queued message can reach.
    const pair = await generateCertificate(["localhost"], { days: 2 });
    const sink = await startSmtpSink({ fallback: { key: pair.keyPem, cert: pair.certPem } });
    try {
      await writeFile(w.configPath, `${await readFile(w.configPath, "utf8")}\n[[outbound.relays]]\ndomains = ["*"]\nhost = "127.0.0.1:${sink.port}"\ntls = "may"\n`);
      w = await w.restart();
      const queue = JSON.parse((await w.cli(["queue", "list", "--json", ...c])).stdout) as { id: string; to: string[] }[];
      assert.deepEqual(queue.map((e) => [e.id, e.to]), [[queued, ["someone@remote.test"]]]);
      const retry = await w.cli(["queue", "retry", queued, ...c]);
      assert.equal(retry.code, 0, retry.stderr);
      const delivered = await sink.waitForMessage("stays", 20_000);
      assert.ok(delivered !== undefined, "the restored queued message is delivered (readable with the restored spool key)");
    } finally {
      await sink.close();
    }
    const [restored] = await w.maildir("user@example.test");
    assert.ok(restored !== undefined);
    assert.deepEqual(await readFile(restored), mailBytes);
    const login = (password: string): Promise<{ out: string }> =>
      swaks(["--server", "127.0.0.1", "--port", String(w.submissionsPort), "--tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", password, "--quit-after", "AUTH"]);
    assert.equal(swaksReply((await login("a long password")).out, "AUTH")?.code, 235);
    assert.equal(swaksReply((await login("wrong password")).out, "AUTH")?.code, 535);
  });

  test("wardmail restore gives the restored tree to server.user", { skip: peerSkip(rootMissing("chown to server.user")) }, async () => {
    const data = join(w.dir, "owned");
    const config = join(w.dir, "owned.toml");
    const text = (await readFile(w.configPath, "utf8")).replace(JSON.stringify(w.dataDir), JSON.stringify(data)).replace("[server]\n", '[server]\nuser = "nobody"\n');
    await writeFile(config, text);
    const r = await w.cli(["restore", backup, "--config", config]);
    assert.equal(r.code, 1, "the running server answers on the same addresses");
    // Same data, other addresses: a config whose listeners nothing answers on.
    let closed = 0; // ports 1, 2, 3 on loopback: nothing listens there
    await writeFile(config, text.replace(/127\.0\.0\.1:\d+/g, () => `127.0.0.1:${++closed}`));
    const ok = await w.cli(["restore", backup, "--config", config]);
    assert.equal(ok.code, 0, ok.stderr);
    const nobody = Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout.trim());
    for (const f of ["", "accounts.sqlite", "spool", "spool/shard-0.db", "spool.keys", "dkim/example.test/bk.rsa.pem", "mail/example.test/user/new"]) {
      assert.equal((await stat(join(data, f))).uid, nobody, f || "data directory");
    }
  });
});
