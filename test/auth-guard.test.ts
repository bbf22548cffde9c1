/**
 * The AUTH brute-force guard against a running Wardmail (two worker
 * threads) with real clients over TLS, for the two faults of issue 10:
 *
 * - A race and a password oracle: a burst of parallel AUTH PLAIN from one
 *   address (60 connections through the TLS client helper, 20 swaks
 *   processes over STARTTLS; 30 SCRAM-SHA-256 exchanges) must check at most
 *   ip_max_failures (10) secrets, counted from the server's log lines, and
 *   once the client is blocked the right password must get the very reply
 *   the wrong ones get.
 * - Anyone can lock any account: failures naming an account from 30
 *   addresses lock it for strangers, but not for a client address where the
 *   account logged in successfully recently (auth.known_network_window);
 *   failures during the lock do not make it last longer.
 *
 * Servers (two worker threads each; delays 10-100 ms): `burst` (default
 * 10 failures per address), `lockout` (default 30 failures per name and
 * 900 s lock) and `shortlock` (a 6 s lock, so the test can watch it end). Source addresses: 127.0.0.20-21 (bursts), 127.0.1.x (the
 * owner's network), 127.0.2.x and 127.0.3.x (strangers).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { AccountStore } from "../src/accounts/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { logLines, openSession, requireBinary, scramWrongProof, swaks, swaksReply, waitForLog } from "./peers/submission.ts";

const DOMAINS = ["example.test", "localhost"];
const PW = { alice: "alice-password-1", bob: "bob-password-22", carol: "carol-password-3" };
const BLOCKED = "454 4.7.0 Too many failed authentication attempts; try again later";
const BAD = "535 5.7.8 Authentication credentials invalid";
const OK = "235 2.7.0 Authentication successful";
const LOCK_SECONDS = 6;

let burst: Wardmail | undefined;
let lockout: Wardmail | undefined;
let shortlock: Wardmail | undefined;

function need(s: Wardmail | undefined): Wardmail {
  assert.ok(s, "server not started");
  return s;
}

before(async () => {
  requireBinary("swaks", ["--version"]);
  // The bursts come from one address: the per-client connection cap (max_connections_per_client,
  // proven in dos.test.ts) is raised so that every AUTH reaches the guard under test.
  const burstLimits = "[limits]\nmax_connections_per_client = 1000\n";
  const started = await Promise.allSettled([
    startWardmail({ workers: 2, extra: `[auth]\nfailure_delay = 10\nmax_failure_delay = 100\n${burstLimits}` }),
    startWardmail({ workers: 2, extra: `[auth]\nfailure_delay = 10\nmax_failure_delay = 100\n${burstLimits}` }),
    startWardmail({ workers: 2, extra: `[auth]\nfailure_delay = 10\nmax_failure_delay = 100\naccount_lock = ${LOCK_SECONDS}\n${burstLimits}` }),
  ]);
  [burst, lockout, shortlock] = started.map((r) => (r.status === "fulfilled" ? r.value : undefined));
  for (const r of started) if (r.status === "rejected") throw r.reason;
  for (const s of [need(burst), need(lockout), need(shortlock)]) {
    const st = AccountStore.open(s.dataDir, { create: true, localDomains: DOMAINS });
    try {
      for (const [name, pw] of Object.entries(PW)) await st.addAccount(`${name}@example.test`, pw);
    } finally {
      st.close();
    }
  }
});

after(async () => {
  for (const s of [burst, lockout, shortlock]) await s?.stop().then(() => s.cleanup());
});

/** One AUTH PLAIN (no authzid) on a new implicit-TLS connection from localAddress: the reply line (without CRLF) and its time. */
async function attempt(s: Wardmail, localAddress: string, user: string, password: string): Promise<{ line: string; ms: number }> {
  const { wire } = await openSession(s.submissionsPort, { tls: "implicit", localAddress });
  try {
    const t0 = performance.now();
    // 30 s: before the fix a burst had every password hashed (argon2id), one after the other.
    const r = await wire.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")}`, 30_000);
    return { line: r.raw.trimEnd(), ms: performance.now() - t0 };
  } finally {
    wire.close();
  }
}

/**
 * The server's AUTH log lines for ip, once each of `attempts` attempts has
 * logged its outcome ("auth ok", "auth failed" or "auth blocked"; logs come
 * from the worker threads a little after the replies).
 */
async function authLog(s: Wardmail, ip: string, attempts: number): Promise<{ failed: number; ok: number; blocked: number }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const count = (msg: string): number => logLines(s.output(), msg).filter((l) => l.ip === ip).length;
    const r = { failed: count("auth failed"), ok: count("auth ok"), blocked: count("auth blocked") };
    if (r.failed + r.ok + r.blocked >= attempts || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

describe("a burst of parallel AUTH from one address (ip_max_failures = 10)", () => {
  test("60 connections over implicit TLS: at most 10 secrets checked; blocked, the right password gets the wrong ones' 454", async (t) => {
    const s = need(burst);
    const ip = "127.0.0.20";
    const right = new Set([15, 30, 45, 59]);
    const replies = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => ({ right: right.has(i), ...(await attempt(s, ip, "alice@example.test", right.has(i) ? PW.alice : `wrong-guess-${i}`)) })),
    );
    const log = await authLog(s, ip, 60);
    const lines = (ok: boolean): string[] => replies.filter((r) => r.right === ok).map((r) => r.line);
    t.diagnostic(`verified: ${log.failed} failed + ${log.ok} ok of 60; replies ${JSON.stringify(countBy(replies.map((r) => r.line.slice(0, 3))))}`);
    t.diagnostic(`median ms to 454: right ${median(replies.filter((r) => r.right && r.line === BLOCKED).map((r) => r.ms)).toFixed(1)}, wrong ${median(replies.filter((r) => !r.right && r.line === BLOCKED).map((r) => r.ms)).toFixed(1)}`);
    // Only the first 10 reservations are checked (a success gives its own back).
    assert.ok(log.failed <= 10, `${log.failed} wrong passwords were checked (limit 10)`);
    assert.equal(log.ok, replies.filter((r) => r.line === OK).length);
    assert.ok(log.failed + log.ok <= 10 + right.size, JSON.stringify(log));
    // The wrong ones: 535 while admitted, then the block's 454. The right ones: 235 when admitted, else the same 454.
    for (const l of lines(false)) assert.ok(l === BAD || l === BLOCKED, l);
    for (const l of lines(true)) assert.ok(l === OK || l === BLOCKED, `right password answered ${l}`);
    assert.ok(lines(false).filter((l) => l === BLOCKED).length >= 60 - 10 - right.size);
    // Nothing a right password gets while blocked differs from what wrong ones get.
    if (lines(true).includes(BLOCKED)) assert.ok(lines(false).includes(BLOCKED));
    assert.equal(lines(false).filter((l) => l === BAD).length, log.failed);

    // A right password admitted in the burst gave its reservation back, so the
    // client may end it below the limit: the failures still missing are checked
    // (535) one by one, then the block holds.
    for (let i = log.failed; i < 10; i++) assert.equal((await attempt(s, ip, "alice@example.test", `top-up-${i}`)).line, BAD);
    // The client stays blocked: the right and a wrong password, one after the other, get the same 454.
    assert.equal((await attempt(s, ip, "alice@example.test", PW.alice)).line, BLOCKED);
    assert.equal((await attempt(s, ip, "alice@example.test", "wrong-again")).line, BLOCKED);
    // Another address is not affected.
    assert.equal((await attempt(s, "127.0.0.22", "alice@example.test", PW.alice)).line, OK);
  });

  test("20 swaks processes in parallel over STARTTLS: at most 10 secrets checked, the right password never singled out", async (t) => {
    const s = need(burst);
    const ip = "127.0.0.21";
    const right = new Set([5, 12, 19]);
    const runs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const r = await swaks([
          "--server", `127.0.0.1:${s.submissionPort}`, "-li", ip, "--tls", "--quit-after", "AUTH",
          "--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", right.has(i) ? PW.bob : `wrong-guess-${i}`,
        ], 30_000);
        const reply = swaksReply(r.out, "AUTH");
        assert.ok(reply, r.out);
        return { right: right.has(i), line: reply.line };
      }),
    );
    const log = await authLog(s, ip, 20);
    t.diagnostic(`verified: ${log.failed} failed + ${log.ok} ok of 20; replies ${JSON.stringify(countBy(runs.map((r) => r.line.slice(0, 3))))}`);
    assert.ok(log.failed <= 10, `${log.failed} wrong passwords were checked (limit 10)`);
    for (const r of runs) assert.ok(r.right ? r.line === OK || r.line === BLOCKED : r.line === BAD || r.line === BLOCKED, JSON.stringify(r));
    assert.ok(runs.filter((r) => !r.right && r.line === BLOCKED).length >= 20 - 10 - right.size);
  });
});

describe("a burst of parallel SCRAM-SHA-256 exchanges from one address", () => {
  test("30 wrong proofs at once: at most 10 proofs checked, the rest refused with 454 before the proof", async (t) => {
    const s = need(burst);
    const ip = "127.0.0.23";
    const lines = await Promise.all(
      Array.from({ length: 30 }, async () => {
        const { wire } = await openSession(s.submissionsPort, { tls: "implicit", localAddress: ip });
        try {
          return (await scramWrongProof(wire, "carol@example.test")).raw.trimEnd();
        } finally {
          wire.close();
        }
      }),
    );
    const log = await authLog(s, ip, 30);
    t.diagnostic(`verified: ${log.failed} proofs of 30; replies ${JSON.stringify(countBy(lines.map((l) => l.slice(0, 3))))}`);
    assert.ok(log.failed <= 10, `${log.failed} proofs were checked (limit 10)`);
    assert.deepEqual(countBy(lines), { [BAD]: log.failed, [BLOCKED]: 30 - log.failed });
  });
});

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

describe("an account under attack from many addresses (account_max_failures = 30)", () => {
  /** 30 wrong guesses at user, in parallel, one from each of 127.0.<net>.<first>..<first+29>. */
  async function distributed(s: Wardmail, user: string, net: number, first: number): Promise<string[]> {
    return Promise.all(Array.from({ length: 30 }, async (_, i) => (await attempt(s, `127.0.${net}.${first + i}`, user, `wrong-guess-${i}`)).line));
  }

  test("the owner keeps logging in from the address it logged in from before; strangers are refused whatever the password", async () => {
    const s = need(lockout);
    assert.equal((await attempt(s, "127.0.1.1", "bob@example.test", PW.bob)).line, OK);
    const guesses = await distributed(s, "bob@example.test", 2, 1);
    assert.deepEqual(countBy(guesses), { [BAD]: 30 });
    // Locked for strangers: the right password gets the same 454 as a wrong one, from a new address.
    assert.equal((await attempt(s, "127.0.2.100", "bob@example.test", "wrong-guess-x")).line, BLOCKED);
    assert.equal((await attempt(s, "127.0.3.1", "bob@example.test", PW.bob)).line, BLOCKED);
    // The owner's address is known: checked as usual (its own limit still holds), the lock stays for others.
    assert.equal((await attempt(s, "127.0.1.1", "bob@example.test", PW.bob)).line, OK);
    assert.equal((await attempt(s, "127.0.1.1", "bob@example.test", "a-typo")).line, BAD);
    assert.equal((await attempt(s, "127.0.1.1", "bob@example.test", PW.bob)).line, OK);
    assert.equal((await attempt(s, "127.0.3.2", "bob@example.test", PW.bob)).line, BLOCKED);
    assert.ok(await waitForLog(() => s.output(), "auth blocked", (l) => l.scope === "user" && l.ip === "127.0.3.1"), s.output().slice(-2000));
  });

  test(`failures during the lock do not extend it: ${LOCK_SECONDS} s after it began, the owner logs in from a new address`, async () => {
    const s = need(shortlock);
    const guesses = await distributed(s, "carol@example.test", 2, 101);
    const locked = Date.now();
    assert.deepEqual(countBy(guesses), { [BAD]: 30 });
    // 30 more from other addresses during the lock (enough to start a new lock if they were counted).
    const during = await distributed(s, "carol@example.test", 3, 101);
    assert.ok(Date.now() - locked < LOCK_SECONDS * 1000, `the second wave took ${Date.now() - locked} ms, longer than the lock`);
    assert.deepEqual(countBy(during), { [BLOCKED]: 30 });
    await new Promise((r) => setTimeout(r, locked + LOCK_SECONDS * 1000 + 300 - Date.now()));
    assert.equal((await attempt(s, "127.0.3.200", "carol@example.test", PW.carol)).line, OK);
  });
});
