/**
 * The remote transport with a scripted SMTP session and a static zone:
 * batching per domain (one session for several messages), MX failover,
 * permanent and temporary outcomes, REQUIRETLS only over authenticated TLS,
 * loops back to ourselves, relays (with AUTH credentials read once from
 * their password files), a TLS policy that cannot be met.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/index.ts";
import { StaticResolver } from "../dns/index.ts";
import { createLogger } from "../log/index.ts";
import type { ClaimedMessage } from "../queue/index.ts";
import { RemoteTransport, type SessionRequest, type SessionOutcome, type TlsRequirement } from "./transport.ts";
import { dsnsFor } from "./bounces.ts";
import { parseDsn } from "./dsn-parse.ts";
import { loadRelayAuth } from "./agent.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureLogger } from "../../test/helpers/queue.ts";

const config = parseConfig('[server]\nhostname = "mx.wardmail.test"\n[smtp]\nlisten = ["192.0.2.250:25"]\n[[outbound.relays]]\ndomains = ["relayed.test"]\nhost = "192.0.2.77:587"\n', { file: "/x/w.toml", env: {}, cwd: "/x" });
const resolver = new StaticResolver({
  "one.test": { MX: [[10, "mx1.one.test"], [20, "mx2.one.test"]] },
  "mx1.one.test": { A: ["192.0.2.1"] },
  "mx2.one.test": { A: ["192.0.2.2"] },
  "nullmx.test": { MX: [[0, "."]] },
  "loop.test": { MX: [[10, "mx.loop.test"]] },
  "mx.loop.test": { A: ["192.0.2.250"] },
});

function message(id: string, rcpts: string[], extra: Partial<ClaimedMessage["envelope"]> = {}): ClaimedMessage {
  return {
    id, state: "active", size: 10, createdAt: Date.now() - 1000, nextAttemptAt: 0, attempts: 0, shard: 0,
    envelope: { mailFrom: "alice@example.test", recipients: rcpts.map((address) => ({ address, dsn: {} })), smtputf8: false, ...extra },
    received: { sessionId: "s", clientIp: "127.0.0.1", clientPort: 1, helo: "h", protocol: "ESMTPSA", listener: "submission", receivedAt: Date.now() },
    recipients: rcpts.map((address, index) => ({ index, address, dsn: {}, state: "queued" as const, attempts: 0 })),
    content: Buffer.from("From: alice@example.test\r\nSubject: s\r\n\r\nbody\r\n"),
  };
}

function transport(script: (req: SessionRequest) => Map<string, SessionOutcome[]> | "down", plan: TlsRequirement | { defer: string } = { mode: "may", source: "opportunistic" }) {
  const sessions: SessionRequest[] = [];
  const t = new RemoteTransport({
    config, resolver, logger: createLogger({ level: "silent" }),
    session: (req) => {
      sessions.push(req);
      const r = script(req);
      return Promise.resolve(r === "down" ? { results: new Map(), fatal: "connection refused" } : { results: r });
    },
    plan: () => Promise.resolve(plan),
    sign: (c) => Promise.resolve(Buffer.concat([Buffer.from("DKIM-Signature: test\r\n"), c])),
  });
  return { t, sessions };
}

const ok = (address: string): SessionOutcome => ({ address, final: "delivered", code: 250, status: "2.0.0", text: "ok" });
const all = (req: SessionRequest, f: (a: string) => SessionOutcome) => new Map(req.messages.map((m) => [m.id, m.recipients.map((r) => f(r.address))]));

test("messages for one domain in the same turn share one session; signed content is sent", async () => {
  const { t, sessions } = transport((req) => all(req, ok));
  const [a, b] = await Promise.all([t.deliver(message("m1", ["x@one.test"]), message("m1", ["x@one.test"]).recipients), t.deliver(message("m2", ["y@one.test", "z@one.test"]), message("m2", ["y@one.test", "z@one.test"]).recipients)]);
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0]?.messages.length, 2);
  assert.equal(sessions[0]?.host, "mx1.one.test");
  assert.ok(sessions[0]?.messages[0]?.content.toString().startsWith("DKIM-Signature: test\r\n"));
  assert.deepEqual(a?.map((o) => o.result), ["delivered"]);
  assert.deepEqual(b?.map((o) => o.result), ["delivered", "delivered"]);
});

test("the first MX down: the second gets the mail; 5xx fails, 4xx defers", async () => {
  const { t, sessions } = transport((req) =>
    req.host === "mx1.one.test"
      ? "down"
      : all(req, (a) => (a.startsWith("bad") ? { address: a, final: "permanent", code: 550, status: "5.1.1", text: "No such user" } : a.startsWith("later") ? { address: a, final: "temporary", code: 451, status: "4.3.0", text: "try later" } : ok(a))),
  );
  const m = message("m", ["good@one.test", "bad@one.test", "later@one.test"]);
  const out = await t.deliver(m, m.recipients);
  assert.deepEqual(sessions.map((s) => s.host), ["mx1.one.test", "mx2.one.test"]);
  assert.deepEqual(out.map((o) => [o.result, o.status]), [["delivered", undefined], ["failed", "5.1.1"], ["deferred", "4.4.1"]]);
  assert.match(out[1]?.diagnostic ?? "", /^smtp; 550 5\.1\.1 No such user$/);
  assert.match(out[2]?.error ?? "", /451 4\.3\.0 try later/);
});

test("null MX and NXDOMAIN fail at once; loops to ourselves fail; REQUIRETLS needs authenticated TLS", async () => {
  const { t, sessions } = transport((req) => all(req, ok));
  const n = message("n", ["x@nullmx.test", "y@nowhere.test", "z@loop.test"]);
  const out = await t.deliver(n, n.recipients);
  assert.deepEqual(out.map((o) => [o.result, o.status]), [["failed", "5.1.10"], ["failed", "5.1.2"], ["failed", "5.4.6"]]);
  const r = message("r", ["x@one.test"], { requireTls: true });
  const refused = await t.deliver(r, r.recipients);
  assert.deepEqual(refused.map((o) => [o.result, o.status]), [["failed", "5.7.10"]]);
  assert.equal(sessions.length, 0);
  const { t: t2, sessions: s2 } = transport((req) => all(req, ok), { mode: "dane", source: "dane", tlsa: [] });
  assert.deepEqual((await t2.deliver(r, r.recipients)).map((o) => o.result), ["delivered"]);
  assert.equal(s2[0]?.messages[0]?.requireTls, true);
});

test("a relay host takes the domain's mail; a TLS policy that cannot be met defers", async () => {
  const { t, sessions } = transport((req) => all(req, ok));
  const m = message("m", ["x@relayed.test"]);
  assert.deepEqual((await t.deliver(m, m.recipients)).map((o) => o.result), ["delivered"]);
  assert.deepEqual([sessions[0]?.address, sessions[0]?.port, sessions[0]?.tls.mode], ["192.0.2.77", 587, "verify"]); // tls = "required": the relay certificate is verified
  const { t: t2, sessions: s2 } = transport((req) => all(req, ok), { defer: "MTA-STS: mx1 not in policy" });
  const d = message("d", ["x@one.test"]);
  const out = await t2.deliver(d, d.recipients);
  assert.deepEqual(out.map((o) => o.result), ["deferred"]);
  assert.match(out[0]?.error ?? "", /MTA-STS/);
  assert.equal(s2.length, 0);
});

test("bounces: failed recipients become one DSN to the sender (NOTIFY honoured, never to <>); delay notice once", () => {
  const queue = { retryMin: 300, concurrency: 16, retryMax: 14400, lifetime: 432000, delayNotice: 14400 };
  const m = message("m", ["a@one.test", "b@one.test", "c@one.test"]);
  const msg = { ...m, recipients: [m.recipients[0]!, { ...m.recipients[1]!, dsn: { notify: ["NEVER"] } }, { ...m.recipients[2]!, dsn: { orcpt: "rfc822;list@example.test" } }] };
  const outcomes = [
    { index: 0, result: "failed" as const, status: "5.1.1", diagnostic: "smtp; 550 5.1.1 No such user", remoteMta: "mx1.one.test" },
    { index: 1, result: "failed" as const, status: "5.1.1" },
    { index: 2, result: "failed" as const, status: "5.7.1", error: "refused" },
  ];
  const dsns = dsnsFor(msg, outcomes, { hostname: "mx.wardmail.test", queue });
  assert.equal(dsns.length, 1);
  const d = dsns[0]!;
  assert.equal(d.envelope.mailFrom, "");
  assert.deepEqual(d.envelope.recipients.map((r) => r.address), ["alice@example.test"]);
  const parsed = parseDsn(d.content);
  assert.deepEqual(parsed.recipients.map((r) => [r["final-recipient"], r.action, r.status]), [["rfc822; a@one.test", "failed", "5.1.1"], ["rfc822; c@one.test", "failed", "5.7.1"]]);
  assert.equal(parsed.recipients[1]?.["original-recipient"], "rfc822;list@example.test");
  assert.equal(dsnsFor({ ...msg, envelope: { ...msg.envelope, mailFrom: "" } }, outcomes, { hostname: "h", queue }).length, 0);
  // Delay notice: due on the first attempt past 4 h, not on the next one.
  const late = { ...m, attempts: 6, createdAt: Date.now() - 4.5 * 3_600_000 };
  assert.equal(dsnsFor(late, [{ index: 0, result: "deferred", error: "busy" }], { hostname: "h", queue }).length, 1);
  const later = { ...m, attempts: 7, createdAt: Date.now() - 9 * 3_600_000 };
  assert.equal(dsnsFor(later, [{ index: 0, result: "deferred", error: "busy" }], { hostname: "h", queue }).length, 0);
});

test("a bounced REQUIRETLS message comes back as RET=HDRS would (RFC 8689 §5): its header only, even with RET=FULL; its body never", () => {
  const queue = { retryMin: 300, concurrency: 16, retryMax: 14400, lifetime: 432000, delayNotice: 14400 };
  const canary = "BODY-CANARY-7f3a9c";
  const base = message("rt", ["a@one.test"], { ret: "FULL" });
  const m = { ...base, content: Buffer.from(`From: alice@example.test\r\nSubject: for your eyes only\r\n\r\n${canary}\r\n`) };
  const failed = [{ index: 0, result: "failed" as const, status: "5.7.10", error: "REQUIRETLS: no MTA-STS or DANE authenticated TLS" }];
  // Control: the same message without REQUIRETLS comes back whole with RET=FULL.
  const full = dsnsFor(m, failed, { hostname: "mx.wardmail.test", queue })[0]?.content.toString("latin1") ?? "";
  assert.ok(full.includes(canary) && full.includes("Content-Type: message/rfc822"), full);
  for (const ret of ["FULL", "HDRS", undefined] as const) {
    const { ret: _drop, ...envelope } = m.envelope;
    const rt = { ...m, envelope: { ...envelope, requireTls: true, ...(ret !== undefined ? { ret } : {}) } };
    const dsns = dsnsFor(rt, failed, { hostname: "mx.wardmail.test", queue });
    assert.equal(dsns.length, 1);
    const text = dsns[0]?.content.toString("latin1") ?? "";
    assert.ok(!text.includes(canary), `the body of a REQUIRETLS message is in its DSN (RET=${ret}):\n${text}`);
    assert.ok(!text.includes("message/rfc822"), text);
    const parsed = parseDsn(dsns[0]?.content ?? Buffer.alloc(0));
    assert.equal(parsed.returned?.type, "text/rfc822-headers", text);
    assert.match(parsed.returned?.content.toString("latin1") ?? "", /^Subject: for your eyes only\r$/m);
  }
});

test("relay AUTH: the relay's credentials go with its sessions; unreadable ones defer without a session", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wardmail-relay-auth-"));
  try {
    writeFileSync(join(dir, "relay.pw"), "pa ss word?\n");
    const cfg = parseConfig(
      `[[outbound.relays]]\ndomains = ["relayed.test"]\nhost = "192.0.2.77:587"\nuser = "me@relay"\npassword_file = "relay.pw"\n` +
        `[[outbound.relays]]\ndomains = ["broken.test"]\nhost = "192.0.2.78:587"\nuser = "me"\npassword_file = "missing.pw"\n` +
        `[[outbound.relays]]\ndomains = ["open.test"]\nhost = "192.0.2.79:25"\n`,
      { file: join(dir, "w.toml"), env: {}, cwd: dir },
    );
    const log = captureLogger("info");
    const relayAuth = loadRelayAuth(cfg.outbound.relays, log.logger);
    const sessions: SessionRequest[] = [];
    const t = new RemoteTransport({
      config: cfg, resolver, logger: createLogger({ level: "silent" }),
      session: (req) => {
        sessions.push(req);
        return Promise.resolve({ results: all(req, ok) });
      },
      plan: () => Promise.resolve({ mode: "may", source: "opportunistic" }),
      sign: (c) => Promise.resolve(c),
      relayAuth,
    });
    const m = message("m", ["x@relayed.test"]);
    assert.deepEqual((await t.deliver(m, m.recipients)).map((o) => o.result), ["delivered"]);
    assert.deepEqual(sessions[0]?.auth, { user: "me@relay", password: "pa ss word?" }); // one trailing newline dropped, nothing else
    assert.equal(sessions[0]?.tls.mode, "verify"); // AUTH only to a verified relay
    const b = message("b", ["x@broken.test"]);
    const out = await t.deliver(b, b.recipients);
    assert.deepEqual(out.map((o) => [o.result, o.status]), [["deferred", "4.3.5"]]);
    assert.match(out[0]?.error ?? "", /cannot read password_file .*missing\.pw: ENOENT/);
    const o = message("o", ["x@open.test"]);
    await t.deliver(o, o.recipients);
    assert.equal(sessions.length, 2);
    assert.equal(sessions[1]?.auth, undefined);
    assert.ok(log.has("relay AUTH credentials unavailable; mail for this relay stays queued"));
    assert.ok(!JSON.stringify(log.lines).includes("pa ss"), "the password is never logged");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
