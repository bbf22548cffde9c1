/**
 * The launcher bin/wardmail (docs/cli.md, docs/deploy.md): it runs the built
 * program with the project's own Node.js 24 from any directory and through
 * a chain of symlinks, never calls npm or npx (a registry lookup), and says
 * what to run when Node.js 24 or dist/ is missing. Started by an older
 * Node.js (Debian's /usr/bin/node, 20), dist/bin/wardmail.js prints which
 * Node.js it needs and exits 3 instead of a stack trace about node:sqlite.
 *
 * Every command here runs a real process with PATH = a directory of
 * tripwires (npm, npx and node that record being called and fail) followed
 * by /usr/bin:/bin, where `node` is the system's old one: the launcher must
 * use neither. `npm test` builds dist/ before the tests.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIST_BIN, ROOT } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";

const LAUNCHER = join(ROOT, "bin", "wardmail");
const SYSTEM_NODE = "/usr/bin/node";

function oldNodeMissing(): string | undefined {
  const missing = binaryMissing(SYSTEM_NODE, ["--version"], "nodejs", { exitZero: true });
  if (missing !== undefined) return missing;
  const v = spawnSync(SYSTEM_NODE, ["--version"], { encoding: "utf8" }).stdout.trim();
  return Number(/^v(\d+)/.exec(v)?.[1]) < 24 ? undefined : `${SYSTEM_NODE} is ${v}, not older than 24: no old Node.js to start dist/ with (Debian 12's package nodejs is 18)`;
}

let dir = "";
let trips = "";
let tripLog = "";

before(async () => {
  assert.ok(existsSync(DIST_BIN), `${DIST_BIN} is missing: run "npm run build" (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), "wardmail-launcher-"));
  trips = join(dir, "tripwires");
  tripLog = join(dir, "tripped");
  await mkdir(trips);
  for (const name of ["npm", "npx", "node"]) {
    await writeFile(join(trips, name), `#!/bin/sh\necho "${name} $*" >> '${tripLog}'\nexit 99\n`, { mode: 0o755 });
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs cmd in cwd with the tripwires first on PATH, offline npm settings and nothing else from this environment. */
function run(cmd: string, args: string[], cwd: string): Run {
  const env = { PATH: `${trips}:/usr/bin:/bin`, HOME: dir, npm_config_offline: "true", LANG: "C.UTF-8" };
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 30_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function tripped(): Promise<string> {
  return existsSync(tripLog) ? readFile(tripLog, "utf8") : "";
}

test("bin/wardmail runs from another directory with the project's Node.js 24, without npm, npx or the PATH's node", async () => {
  const r = run(LAUNCHER, ["--help"], tmpdir());
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: wardmail <command>/);
  assert.equal(r.stderr, "", "no engine or other warning");
  const v = run(LAUNCHER, ["--version"], "/");
  assert.equal(v.stdout, "wardmail 0.1.0\n");
  assert.equal(await tripped(), "");
});

test("through a chain of symlinks (absolute, then relative) and from PATH", async () => {
  const a = join(dir, "a");
  const b = join(dir, "b");
  await mkdir(a);
  await mkdir(b);
  await symlink(LAUNCHER, join(a, "wardmail")); // like ln -s /opt/wardmail/bin/wardmail /usr/local/bin/wardmail
  await symlink("../a/wardmail", join(b, "wm"));
  const direct = run(join(b, "wm"), ["--version"], "/");
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(direct.stdout, "wardmail 0.1.0\n");
  const viaPath = spawnSync("wm", ["config", "--help"], {
    cwd: "/",
    env: { PATH: `${b}:${trips}:/usr/bin:/bin`, HOME: dir },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(viaPath.status, 0, viaPath.stderr);
  assert.match(viaPath.stdout, /^Usage: wardmail config check/);
  assert.equal(await tripped(), "");
});

test("a real command through the launcher: config check of a file, relative to the caller's directory", async () => {
  const cfgDir = join(dir, "cfg");
  await mkdir(cfgDir);
  await writeFile(join(cfgDir, "wardmail.toml"), "[smtp]\nlisten = [\"127.0.0.1:2525\"]\n");
  const r = run(LAUNCHER, ["config", "check", "wardmail.toml"], cfgDir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^wardmail\.toml: valid/);
});

test("without node_modules or dist/, the launcher says to run npm ci and exits 3", async () => {
  const fake = join(dir, "fake");
  await mkdir(join(fake, "bin"), { recursive: true });
  await copyFile(LAUNCHER, join(fake, "bin", "wardmail"));
  await chmod(join(fake, "bin", "wardmail"), 0o755);
  let r = run(join(fake, "bin", "wardmail"), ["--help"], "/");
  assert.equal(r.status, 3);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `wardmail: Node.js 24 is missing: ${fake}/node_modules/node/bin/node does not exist.\nRun "npm ci" in ${fake} (it installs Node.js 24 and builds dist/).\n`);
  await mkdir(join(fake, "node_modules", "node", "bin"), { recursive: true });
  await symlink(join(ROOT, "node_modules", "node", "bin", "node"), join(fake, "node_modules", "node", "bin", "node"));
  r = run(join(fake, "bin", "wardmail"), ["--help"], "/");
  assert.equal(r.status, 3);
  assert.equal(r.stderr, `wardmail: the built program is missing: ${fake}/dist/bin/wardmail.js does not exist.\nRun "npm ci" (or "npm run build") in ${fake}.\n`);
  assert.equal(await tripped(), "");
});

test("dist/bin/wardmail.js started by an old Node.js names the Node.js it needs and the launcher, exit 3", { skip: peerSkip(oldNodeMissing()) }, async () => {
  const version = spawnSync(SYSTEM_NODE, ["--version"], { encoding: "utf8" }).stdout.trim().slice(1);
  for (const args of [["--help"], ["serve"], ["user", "list"]]) {
    const r = run(SYSTEM_NODE, [DIST_BIN, ...args], dir);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      `wardmail: needs Node.js 24 or newer, but ${SYSTEM_NODE} is Node.js ${version}.\n` +
        "Start it with the launcher bin/wardmail in the Wardmail directory: it runs the project's own Node.js 24\n" +
        '(node_modules/node/bin/node, installed by "npm ci").\n',
    );
    assert.doesNotMatch(r.stderr, /sqlite|at .*\.js:\d+/);
  }
  // serve must not have started anything: no data directory appeared.
  assert.deepEqual((await readdir(dir)).filter((f) => f === "var"), []);
});
