/**
 * The systemd unit deploy/wardmail.service (docs/deploy.md):
 *
 * - `systemd-analyze verify` accepts it (with ExecStart pointing at this
 *   checkout's launcher: verify insists that the program exists), and
 *   `systemd-analyze security --offline=yes` rates its exposure "OK" (at most
 *   2.0 of 10); the hardening the issue asks for is in it.
 * - Wardmail runs the way the unit starts it, without systemd (there is no
 *   running systemd here): an unprivileged user (nobody: the unit's
 *   `wardmail` need not exist on a test machine) whose only capability is the
 *   unit's CAP_NET_BIND_SERVICE (ambient, inheritable, bounding set),
 *   no_new_privs, in a mount namespace where / is read-only except the data
 *   directory (ProtectSystem=strict with ReadWritePaths) and /tmp is a fresh
 *   tmpfs (PrivateTmp). It binds 25, 465 and 587 on a loopback address,
 *   takes a message on port 25 and delivers it into a Maildir owned by that
 *   user; /proc shows the process never had more.
 *
 * Needs root (to set up the user and namespace), systemd-analyze (Debian
 * package systemd) and setpriv/unshare (util-linux).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DIST_BIN, ROOT } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip, rootMissing } from "./helpers/peers.ts";
import { RawSmtpClient } from "./peers/smtp-client.ts";

const UNIT = join(ROOT, "deploy", "wardmail.service");
const LAUNCHER = join(ROOT, "bin", "wardmail");
const ANALYZE_MISSING = binaryMissing("systemd-analyze", ["--version"], "systemd", { exitZero: true });

/** The unit's [Service] settings: name → every value given (in order). */
function unitSettings(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of readFileSync(UNIT, "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) {
      section = header[1] ?? "";
      continue;
    }
    const eq = line.indexOf("=");
    if (section !== "Service" || eq < 0) continue;
    const name = line.slice(0, eq);
    out.set(name, [...(out.get(name) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

/** The unit with ExecStart's program replaced by this checkout's launcher, in dir. */
async function unitForHere(dir: string): Promise<string> {
  const text = readFileSync(UNIT, "utf8").replaceAll("/opt/wardmail/bin/wardmail", LAUNCHER);
  assert.notEqual(text, readFileSync(UNIT, "utf8"), "ExecStart names /opt/wardmail/bin/wardmail");
  const file = join(dir, "wardmail.service");
  await writeFile(file, text);
  return file;
}

let dir = "";
before(async () => {
  dir = await mkdtemp("/var/tmp/wardmail-unit-");
  await chmod(dir, 0o755);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("the unit asks for what the issue asks: one capability, no new privileges, read-only system, private tmp, only the data directory writable", () => {
  const s = unitSettings();
  const one = (k: string): string | undefined => s.get(k)?.at(-1);
  assert.equal(one("User"), "wardmail");
  assert.equal(one("ExecStart"), "/opt/wardmail/bin/wardmail serve --config /etc/wardmail/wardmail.toml");
  assert.equal(one("ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
  assert.equal(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
  assert.equal(one("NoNewPrivileges"), "yes");
  assert.equal(one("ProtectSystem"), "strict");
  assert.equal(one("ReadWritePaths"), "/var/lib/wardmail");
  assert.equal(one("StateDirectory"), "wardmail");
  assert.equal(one("PrivateTmp"), "yes");
  assert.equal(one("ProtectHome"), "yes");
  assert.equal(one("Restart"), "on-failure");
  assert.equal(s.get("MemoryDenyWriteExecute"), undefined, "V8's JIT needs W+X memory");
  assert.equal(s.get("PrivateUsers"), undefined, "a namespaced capability cannot bind the host's port 25");
});

describe("systemd-analyze", { skip: peerSkip(ANALYZE_MISSING) }, () => {
  test("verify accepts the unit", async () => {
    const file = await unitForHere(dir);
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stderr.trim(), "", "no complaint about the unit");
  });

  test("verify would catch a broken unit (an unknown setting, a missing program)", async () => {
    const bad = join(dir, "bad");
    await mkdir(bad, { recursive: true });
    const file = join(bad, "wardmail.service");
    await writeFile(file, readFileSync(UNIT, "utf8").replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"));
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", timeout: 60_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not executable|NoNewPrivileges/);
  });

  test("security --offline rates the exposure OK (at most 2.0)", async () => {
    const file = await unitForHere(dir);
    const r = spawnSync("systemd-analyze", ["security", "--offline=yes", "--no-pager", file], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const m = /Overall exposure level for wardmail\.service: (\d+\.\d) (\w+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]}:\n${r.stdout}`);
  });
});

const RUN_MISSING = [
  rootMissing("an unprivileged user with one capability in a mount namespace needs root to set up"),
  binaryMissing("setpriv", ["--version"], "util-linux", { exitZero: true }),
  binaryMissing("unshare", ["--version"], "util-linux", { exitZero: true }),
];

describe("Wardmail under the unit's restrictions", { skip: peerSkip(...RUN_MISSING) }, () => {
  let child: ChildProcess | undefined;
  let output = "";
  let host = "";
  let data = "";
  let uid = -1;
  let gid = -1;

  before(async () => {
    assert.ok(existsSync(DIST_BIN), `${DIST_BIN} is missing: run "npm run build" (npm test does)`);
    uid = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim());
    gid = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }).trim());
    host = `127.25.${(process.pid % 250) + 1}.${Math.floor(Math.random() * 250) + 1}`;
    data = join(dir, "data");
    await mkdir(data, { mode: 0o750 });
    await chown(data, uid, gid); // what StateDirectory= does
    const config = join(dir, "wardmail.toml");
    await writeFile(
      config,
      [
        "[server]",
        `data_dir = "${data}"`,
        'user = "nobody"', // as docs/deploy.md's config: already that user, so nothing to drop
        "workers = 1",
        `[smtp]\nlisten = ["${host}:25"]`,
        `[submission]\nlisten = ["${host}:587"]`,
        `[submissions]\nlisten = ["${host}:465"]`,
        "",
      ].join("\n"),
    );
    await chmod(config, 0o644);

    const s = unitSettings();
    const caps = (s.get("AmbientCapabilities")?.at(-1) ?? "").split(/\s+/).map((c) => c.toLowerCase().replace(/^cap_/, ""));
    const bounding = (s.get("CapabilityBoundingSet")?.at(-1) ?? "").split(/\s+/).map((c) => c.toLowerCase().replace(/^cap_/, ""));
    const plus = (list: string[]): string => ["-all", ...list.map((c) => `+${c}`)].join(",");
    const setpriv = [
      "setpriv",
      "--reuid=nobody",
      `--regid=${gid}`,
      "--init-groups",
      `--inh-caps=${plus(caps)}`,
      `--ambient-caps=${plus(caps)}`,
      `--bounding-set=${plus(bounding)}`,
      ...(s.get("NoNewPrivileges")?.at(-1) === "yes" ? ["--no-new-privs"] : []),
      LAUNCHER,
      "serve",
      "--config",
      config,
    ];
    // ProtectSystem=strict + ReadWritePaths=<data> + PrivateTmp=yes, by hand.
    const underTmp = !relative("/tmp", ROOT).startsWith("..");
    const stash = join(dir, "host-tmp");
    if (underTmp) await mkdir(stash);
    const script = [
      "set -e",
      "mount --make-rprivate /",
      `mount --bind '${data}' '${data}'`,
      "mount -o remount,bind,ro /",
      `mount -o remount,bind,rw '${data}'`,
      // A checkout under /tmp (a CI clone may be there) stays visible, read-only, through the fresh /tmp.
      ...(underTmp ? [`mount --bind /tmp '${stash}'`] : []),
      "mount -t tmpfs -o mode=1777 tmpfs /tmp",
      ...(underTmp ? [`mkdir -p '${ROOT}'`, `mount --bind '${join(stash, relative("/tmp", ROOT))}' '${ROOT}'`, `mount -o remount,bind,ro '${ROOT}'`] : []),
      `exec ${setpriv.map((a) => `'${a}'`).join(" ")}`,
    ].join("\n");
    child = spawn("unshare", ["--mount", "sh", "-c", script], { cwd: "/", stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!output.includes("wardmail: ready") && child.exitCode === null && Date.now() < deadline) await sleep(25);
    assert.match(output, /wardmail: ready/, output);
  });

  after(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child?.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });

  test("binds 25, 465 and 587 as an unprivileged user whose only capability is CAP_NET_BIND_SERVICE, with no_new_privs", () => {
    for (const port of [25, 465, 587]) assert.match(output, new RegExp(`${host.replaceAll(".", "\\.")}:${port}\\b`), output);
    const pid = child?.pid;
    assert.ok(pid !== undefined);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, "latin1"), /dist\/bin\/wardmail\.js\0serve/, "the process is Wardmail itself (every exec replaced the one before)");
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim() ?? "";
    assert.deepEqual(field("Uid").split(/\s+/).map(Number), [uid, uid, uid, uid]);
    const NET_BIND_SERVICE = (1n << 10n).toString(16).padStart(16, "0");
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) assert.equal(field(set), NET_BIND_SERVICE, set);
    assert.equal(field("NoNewPrivs"), "1");
    assert.doesNotMatch(output, /privileges dropped/, "nothing to drop: it never was root");
  });

  test("the capability is what lets it bind: the same user without it gets EACCES for port 25", () => {
    const probe = 'require("net").createServer().listen(25, process.argv[1], () => { console.log("bound"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(1); })';
    const node = join(ROOT, "node_modules", "node", "bin", "node");
    const r = spawnSync("setpriv", ["--reuid=nobody", `--regid=${gid}`, "--init-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", node, "-e", probe, host.replace(/\.\d+$/, ".254")], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.stdout.trim(), "EACCES", r.stderr);
  });

  test("takes a message on port 25 and delivers it into a Maildir of that user; the system stays read-only", async () => {
    const c = await RawSmtpClient.connect(25, host);
    try {
      assert.equal((await c.readReply()).code, 220);
      assert.equal((await c.command("EHLO client.test")).code, 250);
      assert.equal((await c.command("MAIL FROM:<a@sender.test>")).code, 250);
      assert.equal((await c.command("RCPT TO:<postmaster@example.test>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      const done = await c.sendData("From: a@sender.test\r\nSubject: unit\r\n\r\nunder the unit\r\n");
      assert.equal(done.code, 250, done.raw);
    } finally {
      await c.quit();
    }
    const maildir = join(data, "mail", "example.test", "postmaster", "new");
    let files: string[] = [];
    for (let i = 0; i < 200 && files.length === 0; i++) {
      files = await readdir(maildir).catch(() => []);
      if (files.length === 0) await sleep(50);
    }
    assert.equal(files.length, 1, output.slice(-3000));
    assert.equal((await stat(join(maildir, files[0] as string))).uid, uid);
    assert.doesNotMatch(output, /EROFS|read-only file system/i);
  });
});
