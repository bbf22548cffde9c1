/**
 * The receiving host with policy checks, on a real spool: which phases run
 * when (connect, helo and mail at MAIL; rcpt per recipient; data at the
 * end), how decisions become replies, headers and the quarantine flag,
 * fail-closed 451, and who is not checked (submission, trusted networks).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/index.ts";
import { CheckRunner, type Check, type CheckOutcome } from "../policy/index.ts";
import { Spool } from "../queue/index.ts";
import { captureLogger, tempDir } from "../../test/helpers/queue.ts";
import type { ConnectionInfo } from "./connection.ts";
import { Receiver } from "./receiver.ts";
import type { Question } from "../protocol/index.ts";
import { MessageSink } from "../sink/index.ts";
import { VERDICT_DEFAULTS } from "../config/index.ts";

function setup(check: Check, extra = "") {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const config = parseConfig(`[server]\ndata_dir = "${dir}"\nhostname = "mx.wardmail.test"\n[local]\ndomains = ["example.test"]\nmailboxes = ["user@example.test", "other@example.test"]\n[relay]\ntrusted_networks = ["192.0.2.99"]\n${extra}`, { file: `${dir}/w.toml`, env: {}, cwd: dir });
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const checks = new CheckRunner([check], { ...VERDICT_DEFAULTS, "test.reject-rcpt": "reject", "test.fail-mail": "tempfail" }, 1000);
  const sink = new MessageSink({ spool, shard: 0, hostname: config.server.hostname, authservId: config.server.hostname, local: config.local });
  const r = new Receiver({ config, sink, checks });
  return { r, spool, log, done: () => (spool.close(), cleanup()) };
}

function info(over: Partial<ConnectionInfo> = {}, log = captureLogger().logger): ConnectionInfo {
  return { sessionId: "s1", listener: "smtp", clientIp: "198.51.100.1", clientPort: 1234, helo: "client.test", protocol: "ESMTP", channelBinding: undefined, scratch: {}, logger: log, ...over };
}

const env = (from: string, rcpts: string[]) => ({ mailFrom: from, recipients: rcpts.map((address) => ({ address, dsn: {} })), smtputf8: false });
const path = (address: string) => ({ address, local: address.split("@")[0] ?? "", domain: address.split("@")[1] ?? "", utf8: false });

async function ask(r: Receiver, q: Question, i: ConnectionInfo) {
  return await r.answer(q, i);
}

test("phases: connect, helo and mail hooks at MAIL; rcpt per recipient; data at the end with everything seen", async () => {
  const calls: string[] = [];
  const hook = (phase: string, verdicts: (i: { recipients: readonly string[] }) => string[], headers: string[] = []) => (i: { recipients: readonly string[] }): Promise<CheckOutcome> => {
    calls.push(phase);
    return Promise.resolve({ verdicts: verdicts(i), headers });
  };
  const check: Check = {
    name: "test",
    connect: hook("connect", () => ["test.connect"]),
    helo: hook("helo", () => ["test.helo"]),
    mail: hook("mail", () => ["test.mail"]),
    rcpt: hook("rcpt", (i) => (i.recipients[0] === "other@example.test" ? ["test.reject-rcpt"] : ["test.rcpt"])),
    data: hook("data", () => ["dmarc.quarantine"], ["Authentication-Results: mx.wardmail.test; dmarc=fail"]),
  };
  const { r, spool, done } = setup(check);
  try {
    const i = info();
    assert.equal((await ask(r, { type: "mail", path: path("a@b.test"), envelope: env("a@b.test", []) }, i)).reply.code, 250);
    assert.deepEqual(calls, ["connect", "helo", "mail"]);
    assert.equal((await ask(r, { type: "rcpt", path: path("user@example.test"), dsn: {}, envelope: env("a@b.test", []) }, i)).reply.code, 250);
    const refused = await ask(r, { type: "rcpt", path: path("other@example.test"), dsn: {}, envelope: env("a@b.test", ["user@example.test"]) }, i);
    assert.equal(refused.reply.code, 550);
    const content = Buffer.from("Authentication-Results: mx.wardmail.test; dkim=pass (forged)\r\nFrom: a@b.test\r\n\r\nhi\r\n");
    const stored = await ask(r, { type: "message", envelope: env("a@b.test", ["user@example.test"]), content, eightBit: false }, i);
    assert.equal(stored.reply.code, 250);
    assert.deepEqual(calls, ["connect", "helo", "mail", "rcpt", "rcpt", "data"]);
    const id = /queued as (\S+)/.exec(stored.reply.lines[0] ?? "")?.[1] ?? "";
    const msg = spool.admin.get(id);
    assert.equal(msg?.received.quarantine, "dmarc.quarantine");
    const text = msg?.content.toString() ?? "";
    assert.match(text, /^Received: .*\r\n(?:\t.*\r\n)*Authentication-Results: mx\.wardmail\.test; dmarc=fail\r\nX-Wardmail-Verdict: dmarc\.quarantine \(quarantine\)\r\nFrom: a@b\.test\r\n/);
    assert.doesNotMatch(text, /forged/);
  } finally {
    done();
  }
});

test("a tempfail verdict at MAIL answers 451 4.7.1; a throwing check answers 451 4.7.0 and stores nothing", async () => {
  const { r, done } = setup({ name: "test", mail: () => Promise.resolve({ verdicts: ["test.fail-mail"] }), data: () => Promise.reject(new Error("resolver exploded")) });
  try {
    const i = info();
    const m = await ask(r, { type: "mail", path: path("a@b.test"), envelope: env("a@b.test", []) }, i);
    assert.deepEqual([m.reply.code, m.reply.status], [451, "4.7.1"]);
    const d = await ask(r, { type: "message", envelope: env("a@b.test", ["user@example.test"]), content: Buffer.from("From: a@b.test\r\n\r\nx\r\n"), eightBit: false }, i);
    assert.deepEqual([d.reply.code, d.reply.status], [451, "4.7.0"]);
  } finally {
    done();
  }
});

test("DMARC reject answers 550 5.7.1 at the end of DATA; submission and trusted clients are not checked", async () => {
  const { r, done } = setup({ name: "test", data: () => Promise.resolve({ verdicts: ["dmarc.reject"] }) });
  try {
    const msg = { type: "message" as const, envelope: env("a@b.test", ["user@example.test"]), content: Buffer.from("From: a@b.test\r\n\r\nx\r\n"), eightBit: false };
    const d = await ask(r, msg, info());
    assert.deepEqual([d.reply.code, d.reply.status], [550, "5.7.1"]);
    assert.equal((await ask(r, msg, info({ clientIp: "192.0.2.99" }))).reply.code, 250);
    assert.equal((await ask(r, msg, info({ listener: "submission" }))).reply.code, 250);
  } finally {
    done();
  }
});

test("a message with more than 50 Received headers is refused as a loop (554 5.4.6)", async () => {
  const { r, done } = setup({ name: "test" });
  try {
    const hops = (n: number): Buffer => Buffer.from(`${"Received: from a by b\r\n".repeat(n)}From: a@b.test\r\n\r\nx\r\n`);
    const msg = (n: number) => ({ type: "message" as const, envelope: env("a@b.test", ["user@example.test"]), content: hops(n), eightBit: false });
    assert.deepEqual([(await ask(r, msg(51), info({ listener: "submission" }))).reply.code], [554]);
    assert.equal((await ask(r, msg(50), info({ listener: "submission" }))).reply.code, 250);
    // Every spelling the shared header reader knows counts (a byte-order mark, folding before the colon, case);
    // a Received: line in the body does not.
    const spelled = ["\uFEFFReceived: from a by b\r\n", "Received\r\n : from a by b\r\n", "RECEIVED : from a by b\r\n"];
    const mixed = (n: number): Buffer =>
      Buffer.from(`${Array.from({ length: n }, (_, i) => spelled[i % spelled.length]).join("")}From: a@b.test\r\n\r\nReceived: from c by d\r\n`);
    const mixedMsg = (n: number) => ({ ...msg(0), content: mixed(n) });
    assert.equal((await ask(r, mixedMsg(51), info({ listener: "submission" }))).reply.code, 554);
    assert.equal((await ask(r, mixedMsg(50), info({ listener: "submission" }))).reply.code, 250);
  } finally {
    done();
  }
});

test("memory budget: at or above limits.memory_budget MAIL gets 451 4.3.1 and nothing is asked of the checks", async () => {
  // The smallest budget the config allows; this test process is above it.
  assert.ok(process.memoryUsage.rss() >= 64 * 1024 * 1024, "precondition: the test process uses at least 64 MiB");
  let asked = 0;
  const check: Check = { name: "test", mail: () => (asked++, Promise.resolve({ verdicts: [] })) };
  const { r, done } = setup(check, "[limits]\nmemory_budget = 67108864");
  try {
    const answer = await ask(r, { type: "mail", path: path("a@b.test"), envelope: env("a@b.test", []) }, info());
    assert.equal(answer.reply.code, 451);
    assert.equal(answer.reply.status, "4.3.1");
    assert.equal(asked, 0);
  } finally {
    done();
  }
});
