/**
 * The running Wardmail servers the submission tests talk to
 * (test/submission.test.ts: authentication; test/submission-policy.test.ts:
 * what an authenticated client may send), started together in the test
 * file's before() and stopped in its after():
 * - `main`: self-signed certificate, 127.0.0.3/32 trusted, failures hardly
 *   delayed and never blocking (so tests there cannot block each other).
 * - `limits`: an operator certificate for "mx.example.test" and IP
 *   127.0.0.1 (gsasl checks the certificate against the host it connects to,
 *   see the gsasl tests), 3 messages and 5 recipients per account and hour,
 *   AUTH on the MX port too (auth.on_mx).
 * - `brute`: ip_max_failures = 5, failure_delay = 20, max_failure_delay = 100.
 * - `lockout`: account_max_failures = 4, ip_max_failures = 100.
 * Accounts are added with AccountStore while the servers run (they read the
 * accounts database at every lookup).
 */
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../../src/accounts/index.ts";
import { generateCertificate } from "../../src/tls/index.ts";
import { requireBinary } from "../peers/submission.ts";
import { startWardmail, type Wardmail } from "./wardmail.ts";

export const DOMAINS = ["example.test", "localhost"];
export const PW = { alice: "alice-password-1", bob: "bob-password-22", inbox: "inbox-password-3", carol: "carol-password-4", dave: "dave-password-55" };

export type SubmissionServerName = "main" | "limits" | "brute" | "lockout";

export interface SubmissionServers {
  /** The named server; fails the test if it was not started. */
  get(name: SubmissionServerName): Wardmail;
  /** A scratch directory of the test file (it also holds the `limits` server's certificate). */
  readonly dir: string;
  /** The `limits` server's certificate (PEM file). */
  readonly limitsCert: string;
  /** An app password of alice's on the `limits` server. */
  readonly appPassword: string;
}

export const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2, 10)}`;

/** Runs fn on the server's accounts database (the running server sees the changes at once). */
async function accounts(s: Wardmail, fn: (st: AccountStore) => Promise<void>): Promise<void> {
  const st = AccountStore.open(s.dataDir, { create: true, localDomains: DOMAINS });
  try {
    await fn(st);
  } finally {
    st.close();
  }
}

/**
 * Registers the test file's before() and after() hooks that start the named
 * servers together (with their accounts) and stop them; returns the handle
 * the tests reach them through.
 */
export function submissionServers(names: readonly SubmissionServerName[]): SubmissionServers {
  const started = new Map<SubmissionServerName, Wardmail>();
  let dir = "";
  let limitsCert = "";
  let appPassword = "";

  before(async () => {
    requireBinary("swaks", ["--version"]);
    dir = await mkdtemp(join(tmpdir(), "wardmail-subcert-"));
    const g = await generateCertificate(["mx.example.test", "127.0.0.1"]);
    limitsCert = join(dir, "limits.crt");
    await writeFile(limitsCert, g.certPem);
    await writeFile(join(dir, "limits.key"), g.keyPem, { mode: 0o600 });
    const tlsExtra = `[tls]\ncertificates = [ { cert = ${JSON.stringify(limitsCert)}, key = ${JSON.stringify(join(dir, "limits.key"))} } ]\nwatch = false\n`;
    const configs: Record<SubmissionServerName, () => Promise<Wardmail>> = {
      main: () => startWardmail({ extra: '[auth]\nfailure_delay = 10\nmax_failure_delay = 20\nip_max_failures = 1000\naccount_max_failures = 1000\n[relay]\ntrusted_networks = ["127.0.0.3/32"]\n' }),
      limits: () => startWardmail({ workers: 1, extra: `${tlsExtra}[auth]\nfailure_delay = 10\non_mx = true\n[accounts]\nmax_messages_per_hour = 3\nmax_recipients_per_hour = 5\n` }),
      brute: () => startWardmail({ extra: "[auth]\nip_max_failures = 5\nfailure_delay = 20\nmax_failure_delay = 100\n" }),
      lockout: () => startWardmail({ workers: 1, extra: "[auth]\naccount_max_failures = 4\nip_max_failures = 100\nfailure_delay = 10\n" }),
    };
    const setUp: Record<SubmissionServerName, (st: AccountStore) => Promise<void>> = {
      main: async (st) => {
        await st.addAccount("alice@example.test", PW.alice);
        await st.addAccount("inbox@example.test", PW.inbox);
        st.addAlias("ali@example.test", "alice@example.test");
        st.addAlias("inbox-alias@example.test", "inbox@example.test");
        st.addSender("alice@example.test", "alice.news@other.test");
        st.addSender("alice@example.test", "@alice-domain.test");
      },
      limits: async (st) => {
        await st.addAccount("alice@example.test", PW.alice);
        await st.addAccount("carol@example.test", PW.carol);
        await st.addAccount("dave@example.test", PW.dave);
        appPassword = await st.addAppPassword("alice@example.test", "gsasl");
      },
      brute: (st) => st.addAccount("alice@example.test", PW.alice),
      lockout: async (st) => {
        await st.addAccount("alice@example.test", PW.alice);
        await st.addAccount("bob@example.test", PW.bob);
        await st.addAccount("frank@example.test", PW.bob);
        st.addAlias("frankie@example.test", "frank@example.test");
      },
    };
    const results = await Promise.allSettled(names.map((n) => configs[n]()));
    results.forEach((r, i) => {
      if (r.status === "fulfilled") started.set(names[i]!, r.value);
    });
    for (const r of results) if (r.status === "rejected") throw r.reason;
    await Promise.all(names.map((n) => accounts(started.get(n)!, setUp[n])));
  });

  after(async () => {
    for (const n of names) {
      const s = started.get(n);
      await s?.stop().then(() => s.cleanup());
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  return {
    get(name) {
      const s = started.get(name);
      assert.ok(s, "server not started");
      return s;
    },
    get dir() {
      return dir;
    },
    get limitsCert() {
      return limitsCert;
    },
    get appPassword() {
      return appPassword;
    },
  };
}
