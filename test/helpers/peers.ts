/**
 * Tests that need a real peer (a program from a Debian package) or root.
 *
 * On a developer's machine a missing peer skips the test and says why. When
 * the run is the proof, a missing peer FAILS: with `CI=true` (CI runs
 * `.ci/run` so) or `WARDMAIL_REQUIRE_PEERS=1`, the test that needs the peer
 * fails with a message naming the package to install, so a run without its
 * peers cannot pass with a smaller count. `WARDMAIL_REQUIRE_PEERS=0` turns
 * this off again under CI.
 *
 * Every test that would skip for a missing program or for not being root
 * goes through here: `peerSkip()` for a test's or suite's `skip` option,
 * `skipOrFail()` inside a running test. Skips of conformance cases (the
 * expectation does not apply; a written reason) do not: they are not peers.
 */
import { spawnSync } from "node:child_process";
import { test, type TestContext } from "node:test";

/** True when a missing peer must fail the run: CI=true (or 1), or WARDMAIL_REQUIRE_PEERS=1; WARDMAIL_REQUIRE_PEERS=0 wins. */
export function peersRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const own = env.WARDMAIL_REQUIRE_PEERS?.trim();
  if (own === "1" || own === "true") return true;
  if (own === "0" || own === "false") return false;
  const ci = env.CI?.trim().toLowerCase();
  return ci === "true" || ci === "1";
}

/** How to get a missing peer, for every message. */
function install(pkg: string): string {
  return `install the Debian package ${pkg} (scripts/install-peers.sh installs every test peer)`;
}

/**
 * undefined when `cmd args` can be run, else why not, naming the Debian
 * package. By default only a failure to start counts (some programs exit
 * non-zero for --help); `exitZero` also requires exit status 0.
 */
export function binaryMissing(cmd: string, args: readonly string[], pkg: string, opts: { exitZero?: boolean } = {}): string | undefined {
  const r = spawnSync(cmd, [...args], { stdio: "ignore", timeout: 20_000 });
  if (r.error !== undefined) return `${cmd} cannot be run (${r.error.message}): ${install(pkg)}`;
  if (opts.exitZero === true && r.status !== 0) return `\`${[cmd, ...args].join(" ")}\` exits ${r.status ?? r.signal}: ${install(pkg)}`;
  return undefined;
}

/** undefined when this process is root, else why the test needs it. */
export function rootMissing(why: string): string | undefined {
  return process.getuid?.() === 0 ? undefined : `needs root: ${why} (run the tests as root, as CI does)`;
}

/** The message a required peer's failure carries. */
export function requiredMessage(reason: string): string {
  return `missing test peer: ${reason}. Peers are required here (CI=true or WARDMAIL_REQUIRE_PEERS=1; WARDMAIL_REQUIRE_PEERS=0 skips instead)`;
}

/**
 * For a test's or suite's `skip` option: false when every peer is there
 * (the first missing one otherwise, as the reason). When peers are
 * required, a test named "missing test peer: ..." that fails is registered
 * where this is called, so the run fails and says what to install; the tests
 * that need the peer are then skipped with the same reason.
 */
export function peerSkip(...missing: (string | undefined)[]): string | false {
  const reason = missing.find((m) => m !== undefined);
  if (reason === undefined) return false;
  if (peersRequired()) {
    test(`missing test peer: ${reason}`, () => {
      throw new Error(requiredMessage(reason));
    });
  }
  return reason;
}

/** Inside a running test whose peer turned out to be missing: skip it, or fail it when peers are required. */
export function skipOrFail(t: TestContext, reason: string): void {
  if (peersRequired()) throw new Error(requiredMessage(reason));
  t.skip(reason);
}
