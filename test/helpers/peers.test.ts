/**
 * test/helpers/peers.ts: a missing peer skips a test on a developer's
 * machine and fails the run under CI=true or WARDMAIL_REQUIRE_PEERS=1. The
 * last two tests run `node --test` on a file whose test needs a program that
 * does not exist, once each way, and read the exit code and the report.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binaryMissing, peersRequired, requiredMessage } from "./peers.ts";

test("peersRequired: CI=true or 1, or WARDMAIL_REQUIRE_PEERS=1; WARDMAIL_REQUIRE_PEERS=0 wins", () => {
  const cases: [NodeJS.ProcessEnv, boolean][] = [
    [{}, false],
    [{ CI: "true" }, true],
    [{ CI: "TRUE" }, true],
    [{ CI: "1" }, true],
    [{ CI: "false" }, false],
    [{ CI: "" }, false],
    [{ WARDMAIL_REQUIRE_PEERS: "1" }, true],
    [{ WARDMAIL_REQUIRE_PEERS: "true" }, true],
    [{ WARDMAIL_REQUIRE_PEERS: "0" }, false],
    [{ CI: "true", WARDMAIL_REQUIRE_PEERS: "0" }, false],
    [{ CI: "false", WARDMAIL_REQUIRE_PEERS: "1" }, true],
  ];
  for (const [env, want] of cases) assert.equal(peersRequired(env), want, JSON.stringify(env));
});

test("binaryMissing: names the program and the package; exitZero also needs exit status 0", () => {
  const why = binaryMissing("/nonexistent/wardmail-peer", ["--version"], "wardmail-peer-pkg");
  assert.match(why ?? "", /^\/nonexistent\/wardmail-peer cannot be run \(.*ENOENT.*\): install the Debian package wardmail-peer-pkg/);
  assert.equal(binaryMissing(process.execPath, ["--version"], "nodejs"), undefined);
  assert.equal(binaryMissing(process.execPath, ["-e", "process.exit(3)"], "nodejs"), undefined, "by default only a failure to start counts");
  assert.match(binaryMissing(process.execPath, ["-e", "process.exit(3)"], "nodejs", { exitZero: true }) ?? "", /exits 3: install the Debian package nodejs/);
  assert.match(requiredMessage("x"), /CI=true or WARDMAIL_REQUIRE_PEERS=1/);
});

/** Runs `node --test` on a file with one test that needs a missing program, with `env` added to a CI-free environment. */
function runFixture(env: Record<string, string>): { code: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "wardmail-peers-"));
  try {
    const file = join(dir, "fixture.test.ts");
    const helper = new URL("./peers.ts", import.meta.url).href;
    writeFileSync(
      file,
      [
        `import { test } from "node:test";`,
        `import { binaryMissing, peerSkip } from ${JSON.stringify(helper)};`,
        `test("needs a peer", { skip: peerSkip(binaryMissing("/nonexistent/wardmail-peer", [], "wardmail-peer-pkg")) }, () => {});`,
        `test("needs nothing", () => {});`,
        "",
      ].join("\n"),
    );
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "CI" && k !== "WARDMAIL_REQUIRE_PEERS" && !k.startsWith("NODE_TEST")));
    const r = spawnSync(process.execPath, ["--test", "--test-reporter=tap", file], { env: { ...base, ...env }, encoding: "utf8", timeout: 60_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a missing peer skips the test and the run passes when peers are not required", () => {
  const r = runFixture({});
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /# SKIP .*install the Debian package wardmail-peer-pkg/);
  assert.match(r.out, /^# fail 0$/m);
  assert.match(r.out, /^# skipped 1$/m);
});

const REQUIRING: Record<string, string>[] = [{ CI: "true" }, { WARDMAIL_REQUIRE_PEERS: "1" }];
for (const env of REQUIRING) {
  test(`a missing peer fails the run with ${Object.entries(env)[0]?.join("=")}, naming the package`, () => {
    const r = runFixture(env);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /not ok \d+ - missing test peer: \/nonexistent\/wardmail-peer cannot be run/);
    assert.match(r.out, /install the Debian package wardmail-peer-pkg/);
    assert.match(r.out, /^# fail 1$/m);
  });
}
