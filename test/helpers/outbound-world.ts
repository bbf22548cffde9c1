/**
 * The world of the outbound end-to-end tests (test/outbound.test.ts,
 * test/outbound-tls.test.ts): alice submits over implicit TLS (swaks, or a
 * raw client for REQUIRETLS); Wardmail finds the MX in a Knot DNS server on
 * loopback, signs with the keys that `wardmail dkim keygen` made, and
 * delivers to real Postfix instances that store the mail in Maildirs;
 * bounces come back to alice as DSNs (read with src/outbound/dsn-parse.ts);
 * MTA-STS policies are fetched over HTTPS from a server on 127.0.0.7:443.
 *
 * One Wardmail, one knotd per test file. Every MX is on the same TCP port P
 * (outbound.port applies to all destinations) but on its own loopback
 * address:
 *   peer.test      mx 127.0.0.1  Postfix, STARTTLS (test CA cert for mx.peer.test): bob@, rt@
 *   down.test      mx 127.0.0.2  nothing at first; the retry test starts Postfix's smtp-sink there
 *   notls.test     mx 127.0.0.3  Postfix without STARTTLS; outbound.tls_policy "encrypt"
 *   nullmx.test    MX 0 .        (RFC 7505)
 *   sts.test       mx 127.0.0.5  Postfix, cert for mx.sts.test; MTA-STS enforce
 *   stsbad.test    mx 127.0.0.6  Postfix, cert for another name (same test CA); MTA-STS enforce
 *   stsfetch.test  mx 127.0.0.1  (the peer.test Postfix, gus@); MTA-STS TXT record, policy 404
 *   example.test   ours: the DKIM key records
 * A test file starts the Postfix instances it names (and the MTA-STS policy
 * server if it asks). The server trusts the test CA through
 * NODE_EXTRA_CA_CERTS (the MX check and the policy fetch use Node's default
 * CA set). The policy hosts mta-sts.<domain> are resolved through Wardmail's
 * own resolver (Knot publishes them at 127.0.0.7) and fetched on port 443,
 * where the test's HTTPS server listens (root: port 443).
 *
 * Every test sends its own message (a unique token in the Subject) to its
 * own recipient, so the tests do not see each other's mail; they run in
 * file order.
 */
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AccountStore } from "../../src/accounts/index.ts";
import { QueueAdmin } from "../../src/queue/index.ts";
import { parseDsn, type ParsedDsn } from "../../src/outbound/dsn-parse.ts";
import { CertFactory, type Issued } from "../../src/outbound/mta-sts-testing.ts";
import { exec, type ExecResult } from "../peers/exec.ts";
import { knotMissing, startKnot, txtRdata, zoneText, type Knot } from "../peers/knot.ts";
import { freePort } from "../peers/ports.ts";
import { postfixMissing, SMTP_SINK_BIN, startPostfix, type PostfixInstance, type PostfixOptions } from "../peers/postfix.ts";
import { loggedIn, logLines, mailWith, queueList, swaks, swaksReply, type QueueSummary } from "../peers/submission.ts";
import { pythonMissing } from "./dkim.ts";
import { binaryMissing, peerSkip } from "./peers.ts";
import { BIN, startWardmail, type Wardmail } from "./wardmail.ts";

export const ALICE = "alice@example.test";
const ALICE_PW = "alice-outbound-pw-1";
export const SELECTOR = "s1";
const POLICY_IP = "127.0.0.7";
const POLICY_HOSTS = ["mta-sts.sts.test", "mta-sts.stsbad.test", "mta-sts.stsfetch.test"];

/** The Postfix MX hosts a test file can ask for (see the table above). */
export type PeerName = "peer" | "notls" | "sts" | "stsbad";

/** The peers every outbound test file needs: a skip reason, or false (with CI=true a missing peer fails). */
export function outboundSkip(): string | false {
  return peerSkip(
    knotMissing(),
    postfixMissing(),
    binaryMissing("swaks", ["--version"], "swaks"),
    binaryMissing(SMTP_SINK_BIN, ["-h"], "postfix"),
    binaryMissing("openssl", ["version"], "openssl"),
    pythonMissing("dkim, dns.resolver", "python3-dkim"),
  );
}

export const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2, 10)}`;

/** A tool with stdin input; `out` has stdout and stderr. */
export const pipe = (cmd: string, args: string[], input: string | Buffer, timeoutMs = 20_000): Promise<ExecResult> => exec(cmd, args, { input, timeoutMs });

function need<T>(v: T | undefined, what: string): T {
  assert.ok(v !== undefined, `${what} not started`);
  return v;
}

export type Entry = QueueSummary & { lastError?: string; attempts?: number };

/** An HTTPS server for the MTA-STS policy hosts on POLICY_IP:443 (certificate from the test CA); counts requests per host in `hits`. */
async function startPolicyServer(cert: Issued, policies: Record<string, string>, hits: Map<string, number>): Promise<https.Server> {
  const server = https.createServer({ key: cert.key, cert: cert.chain }, (req, res) => {
    const host = (req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
    hits.set(host, (hits.get(host) ?? 0) + 1);
    const body = req.url === "/.well-known/mta-sts.txt" ? policies[host] : undefined;
    if (body === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": String(Buffer.byteLength(body)) }).end(body);
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => reject(new Error(`cannot listen on ${POLICY_IP}:443 for the MTA-STS policy server (needs root and a free port): ${e.message}`));
    server.once("error", fail);
    server.listen(443, POLICY_IP, () => {
      server.removeListener("error", fail);
      resolve();
    });
  });
  return server;
}

/** Makes the DKIM keys with the real CLI (its own data dir) and returns the printed TXT lines. */
async function keygen(dir: string): Promise<{ dataDir: string; lines: string[] }> {
  const dataDir = join(dir, "keygen-data");
  const config = join(dir, "keygen.toml");
  await writeFile(config, `[server]\ndata_dir = ${JSON.stringify(dataDir)}\n`);
  const r = await pipe(process.execPath, [BIN, "dkim", "keygen", "--domain", "example.test", "--selector", SELECTOR, "--config", config], "", 30_000);
  assert.equal(r.code, 0, `wardmail dkim keygen failed: ${r.out}`);
  const lines = r.out.split("\n").filter((l) => /^\S+\._domainkey\.example\.test\.\s+IN\s+TXT\s+"/.test(l));
  assert.equal(lines.length, 2, `keygen printed ${lines.length} TXT records:\n${r.out}`);
  return { dataDir, lines };
}

export interface OutboundWorld {
  /** The Wardmail server (fails the test if it did not start). */
  readonly wardmail: () => Wardmail;
  /** A Postfix MX host the file asked for. */
  readonly peer: (name: PeerName) => PostfixInstance;
  /** Knot's port (the zones above). */
  readonly knotPort: () => number;
  /** The TCP port of every MX (outbound.port). */
  readonly port: () => number;
  /** MTA-STS policy requests per host name. */
  readonly policyHits: Map<string, number>;
  /** Submits a message as alice over implicit TLS with swaks; asserts the final 250. */
  readonly submit: (to: string, subject: string) => Promise<void>;
  /** Submits a message as alice over implicit TLS with MAIL FROM ... RET=FULL REQUIRETLS (raw client: swaks has no such option). */
  readonly submitRequireTls: (to: string, subject: string) => Promise<void>;
  /** The DSN in alice's Maildir that mentions `needle` (a token or a recipient), parsed. */
  readonly dsnWith: (needle: string, timeoutMs?: number) => Promise<{ raw: string; dsn: ParsedDsn }>;
  /**
   * Polls the queue (QueueAdmin in this process: cheaper than a CLI run per
   * poll) until a message to rcpt satisfies ok; then returns what `wardmail
   * queue list --json` says about it, which must satisfy ok too.
   */
  readonly queueEntry: (rcpt: string, ok: (e: Entry) => boolean, timeoutMs?: number) => Promise<Entry>;
  /**
   * Removes the messages to rcpt from the queue (what `wardmail queue delete`
   * does), so that their retries every 2 s stop loading the machine; their
   * TLS-RPT counts stay. Checked by listing again, at most 50 rounds.
   */
  readonly dropFromQueue: (rcpt: string) => Promise<void>;
  /** The "outbound session" log lines for an MX host. */
  readonly sessions: (mx: string) => Record<string, unknown>[];
  /**
   * Waits for a session to mx that ended without an error: its line is logged
   * when the session closes, which can be after the peer has the message.
   */
  readonly okSession: (mx: string, timeoutMs?: number) => Promise<Record<string, unknown>>;
  /** Waits until the server has logged at least n outbound sessions to mx. */
  readonly waitSessions: (mx: string, n: number, timeoutMs?: number) => Promise<Record<string, unknown>[]>;
}

/**
 * Registers the test file's before() and after() hooks that start Knot (the
 * zones above, with the keys `wardmail dkim keygen` made), the Postfix MX
 * hosts in `peers`, the MTA-STS policy server if `mtaSts`, and Wardmail with
 * alice's account; and stop them. `skip`: outboundSkip()'s answer (nothing
 * starts when a peer is missing). Returns the handle the tests use.
 */
export function outboundWorld(o: { skip: string | false; peers: readonly PeerName[]; mtaSts?: boolean }): OutboundWorld {
  let work = "";
  let certs: CertFactory | undefined;
  let knot: Knot | undefined;
  let w: Wardmail | undefined;
  let port = 0;
  let policyServer: https.Server | undefined;
  const policyHits = new Map<string, number>();
  const peers = new Map<PeerName, PostfixInstance>();

  before(async () => {
    if (o.skip !== false) return;
    work = await mkdtemp(join(tmpdir(), "wardmail-outbound-"));
    certs = await CertFactory.create();
    const f = certs;
    const caCert = await f.caCert("Wardmail outbound test CA");
    const caPath = join(work, "ca.pem");
    await writeFile(caPath, caCert.cert);
    port = await freePort();

    // Everything that does not wait for something else starts at once (2 cores: Postfix start-up dominates).
    const leaf = (name: string): Promise<Issued> => f.make({ names: [name], issuer: caCert });
    const keys = keygen(work);
    const mx = (ip: string, extra: string[] = []): string[] => ["@ MX 10 mx", `mx A ${ip}`, ...extra];
    const stsTxt = `_mta-sts TXT ${txtRdata("v=STSv1; id=1")}`;
    const knotUp = keys.then(async (k) => {
      knot = await startKnot({
        zones: {
          "example.test": zoneText("example.test", [...k.lines]),
          "peer.test": zoneText("peer.test", mx("127.0.0.1")),
          "down.test": zoneText("down.test", mx("127.0.0.2")),
          "notls.test": zoneText("notls.test", mx("127.0.0.3")),
          "nullmx.test": zoneText("nullmx.test", ["@ MX 0 ."]),
          "sts.test": zoneText("sts.test", mx("127.0.0.5", [stsTxt, `mta-sts A ${POLICY_IP}`])),
          "stsbad.test": zoneText("stsbad.test", mx("127.0.0.6", [stsTxt, `mta-sts A ${POLICY_IP}`])),
          "stsfetch.test": zoneText("stsfetch.test", mx("127.0.0.1", [stsTxt, `mta-sts A ${POLICY_IP}`])),
        },
      });
      return knot;
    });
    const tlsOf = async (name: string): Promise<PostfixOptions["tls"]> => {
      const c = await leaf(name);
      return { certFile: c.certPath, keyFile: c.keyPath };
    };
    const policy = (mxName: string): string => `version: STSv1\nmode: enforce\nmx: ${mxName}\nmax_age: 86400\n`;
    const peerOptions: Record<PeerName, () => Promise<PostfixOptions>> = {
      peer: async () => ({ mode: "mailbox", host: "127.0.0.1", mailboxes: ["bob@peer.test", "rt@peer.test", "gus@stsfetch.test"], tls: await tlsOf("mx.peer.test") }),
      notls: () => Promise.resolve({ mode: "mailbox", host: "127.0.0.3", mailboxes: ["dan@notls.test"] }),
      sts: async () => ({ mode: "mailbox", host: "127.0.0.5", mailboxes: ["eve@sts.test", "rt@sts.test"], tls: await tlsOf("mx.sts.test") }),
      stsbad: async () => ({ mode: "mailbox", host: "127.0.0.6", mailboxes: ["fay@stsbad.test"], tls: await tlsOf("mx.elsewhere.test") }),
    };
    const all = await Promise.allSettled([
      ...o.peers.map(async (key) => {
        peers.set(key, await startPostfix({ ...(await peerOptions[key]()), port }));
      }),
      ...(o.mtaSts === true
        ? [
            f.make({ names: POLICY_HOSTS, issuer: caCert }).then(async (c) => {
              policyServer = await startPolicyServer(c, { "mta-sts.sts.test": policy("mx.sts.test"), "mta-sts.stsbad.test": policy("mx.stsbad.test") }, policyHits);
            }),
          ]
        : []),
      knotUp.then(async (k) => {
        w = await startWardmail({
          domains: ["example.test"],
          mailboxes: ["postmaster@example.test"],
          checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${k.port}"]\ntimeout = 500\nattempts = 2\n`,
          extra: ["[outbound]", `port = ${port}`, "[outbound.tls_policy]", '"notls.test" = "encrypt"', "[queue]", "retry_min = 1", "retry_max = 2", ""].join("\n"),
          env: {
            NODE_EXTRA_CA_CERTS: caPath,
          },
        });
        // The keys go where the server looks for them, before anything is sent (it reads them at its first signature).
        await cp(join((await keys).dataDir, "dkim"), join(w.dataDir, "dkim"), { recursive: true });
        const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test"] });
        try {
          await st.addAccount(ALICE, ALICE_PW);
        } finally {
          st.close();
        }
      }),
    ]);
    for (const r of all) if (r.status === "rejected") throw r.reason;
  });

  after(async () => {
    await Promise.allSettled([
      w?.stop().then(() => w?.cleanup()),
      ...[...peers.values()].map((p) => p.stop()),
      knot?.stop(),
      policyServer !== undefined
        ? new Promise<void>((resolve) => {
            policyServer?.closeAllConnections();
            policyServer?.close(() => resolve());
          })
        : undefined,
    ]);
    await certs?.cleanup();
    if (work !== "") await rm(work, { recursive: true, force: true });
  });

  const wardmail = (): Wardmail => need(w, "wardmail");
  const sessions = (mx: string): Record<string, unknown>[] => logLines(wardmail().output(), "outbound session").filter((l) => l.mx === mx);

  return {
    wardmail,
    peer: (name) => need(peers.get(name), `${name} postfix`),
    knotPort: () => need(knot, "knot").port,
    port: () => port,
    policyHits,

    async submit(to, subject) {
      const s = wardmail();
      const r = await swaks([
        "--server", "127.0.0.1", "--port", String(s.submissionsPort), "--tlsc",
        "-a", "PLAIN", "-au", ALICE, "-ap", ALICE_PW,
        "--from", ALICE, "--to", to,
        "--header", `Subject: ${subject}`,
        "--body", `Test body for ${subject}.\nSecond line.`,
      ]);
      const end = swaksReply(r.out, ".");
      assert.equal(r.code, 0, `swaks failed:\n${r.out}`);
      assert.equal(end?.code, 250, `end of data not accepted:\n${r.out}`);
    },

    async submitRequireTls(to, subject) {
      const s = wardmail();
      const sess = await loggedIn(s.submissionsPort, ALICE, ALICE_PW, { tls: "implicit" });
      try {
        assert.ok(sess.ehlo.lines.includes("REQUIRETLS"), `no REQUIRETLS in EHLO: ${sess.ehlo.raw}`);
        // RET=FULL asks for the whole message back in a bounce; REQUIRETLS overrides it (RFC 8689 §5).
        const mail = await sess.wire.command(`MAIL FROM:<${ALICE}> RET=FULL REQUIRETLS`);
        assert.equal(mail.code, 250, mail.raw);
        const rcpt = await sess.wire.command(`RCPT TO:<${to}>`);
        assert.equal(rcpt.code, 250, rcpt.raw);
        const data = await sess.wire.command("DATA");
        assert.equal(data.code, 354, data.raw);
        const body = [`From: <${ALICE}>`, `To: <${to}>`, `Subject: ${subject}`, `Message-ID: <${subject}@example.test>`, `Date: ${new Date().toUTCString()}`, "", "Secret.", "."].join("\r\n");
        const end = await sess.wire.command(body, 10_000);
        assert.equal(end.code, 250, end.raw);
        await sess.wire.command("QUIT").catch(() => undefined);
      } finally {
        sess.wire.close();
      }
    },

    async dsnWith(needle, timeoutMs = 10_000) {
      const raw = await mailWith(wardmail(), ALICE, needle, timeoutMs);
      return { raw, dsn: parseDsn(Buffer.from(raw, "latin1")) };
    },

    async queueEntry(rcpt, ok, timeoutMs = 10_000) {
      const s = wardmail();
      const deadline = Date.now() + timeoutMs;
      let last: unknown = [];
      for (;;) {
        const admin = QueueAdmin.open(s.dataDir);
        let found = false;
        try {
          const list = admin.list();
          last = list.map((e) => ({ id: e.id, state: e.state, to: e.recipients.map((r) => r.address), lastError: e.lastError }));
          found = list.some((e) => e.recipients.some((r) => r.address === rcpt) && ok({ id: e.id, state: e.state, from: e.envelope.mailFrom, to: e.recipients.map((r) => r.address), ...(e.lastError !== undefined ? { lastError: e.lastError } : {}), attempts: e.attempts }));
        } finally {
          admin.close();
        }
        if (found) {
          const e = ((await queueList(s)) as Entry[]).find((x) => x.to.includes(rcpt) && ok(x));
          if (e) return e;
        }
        if (Date.now() > deadline) assert.fail(`no queue entry for ${rcpt} as expected within ${timeoutMs} ms: ${JSON.stringify(last)}\n${s.output().slice(-3000)}`);
        await sleep(100);
      }
    },

    async dropFromQueue(rcpt) {
      const dataDir = wardmail().dataDir;
      for (let i = 0; i < 50; i++) {
        const admin = QueueAdmin.open(dataDir);
        try {
          const left = admin.list().filter((x) => x.recipients.some((r) => r.address === rcpt));
          if (left.length === 0) return;
          for (const e of left) admin.delete(e.id);
        } finally {
          admin.close();
        }
        await sleep(100);
      }
      assert.fail(`could not delete the messages to ${rcpt} from the queue`);
    },

    sessions,

    async okSession(mx, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ok = sessions(mx).find((l) => l.error === undefined);
        if (ok) return ok;
        if (Date.now() > deadline) assert.fail(`no error-free outbound session to ${mx} within ${timeoutMs} ms: ${JSON.stringify(sessions(mx))}\n${wardmail().output().slice(-3000)}`);
        await sleep(100);
      }
    },

    async waitSessions(mx, n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = sessions(mx);
        if (got.length >= n) return got;
        if (Date.now() > deadline) assert.fail(`fewer than ${n} outbound sessions to ${mx} within ${timeoutMs} ms\n${wardmail().output().slice(-3000)}`);
        await sleep(100);
      }
    },
  };
}
