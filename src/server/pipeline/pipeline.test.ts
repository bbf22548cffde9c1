/**
 * The pipeline per listener role: which role a transaction gets and what
 * runs on it (the inbound checks only on the MX listener for clients
 * neither authenticated nor trusted; the content checks everywhere); the
 * typed state shared by the phases of one transaction and by the
 * transactions of one connection; the transaction closed and dropped when
 * the protocol core's transaction ends (RSET, the message's answer) on a
 * real Connection over loopback; an rcpt hook seeing the sender of MAIL;
 * and the message's header section and author read once at the end of
 * content (one MessageHead shared by sender ownership and the checks).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { parseConfig, VERDICT_DEFAULTS } from "../../config/index.ts";
import { headerFields, MessageHead } from "../../message/index.ts";
import { CheckRunner, ConnectionState, TransactionState, type Check, type CheckInput, type CheckOutcome } from "../../policy/index.ts";
import { Spool } from "../../queue/index.ts";
import { MessageSink } from "../../sink/index.ts";
import { captureLogger, tempDir } from "../../../test/helpers/queue.ts";
import { serveConnections } from "../../../test/helpers/connection.ts";
import type { ConnectionInfo, ConnectionScratch, HostAnswer, SessionHost } from "../host.ts";
import { LocalRecipients } from "../recipients.ts";
import { Receiver } from "../receiver.ts";
import type { Question } from "../../protocol/index.ts";
import { Pipelines, type Transaction } from "./index.ts";

const CONFIG = (dir: string) =>
  parseConfig(`[server]\ndata_dir = "${dir}"\nhostname = "mx.wardmail.test"\n[local]\ndomains = ["example.test"]\nmailboxes = ["user@example.test", "other@example.test"]\n[relay]\ntrusted_networks = ["192.0.2.99"]\n`, { file: `${dir}/w.toml`, env: {}, cwd: dir });

/** What a check saw, per phase. */
interface Seen {
  readonly phase: string;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly state: TransactionState;
  readonly connection: ConnectionState | undefined;
  readonly verdicts: readonly string[];
}

/** A check that records every call and gives one verdict per phase. */
function recorder(name: string, seen: Seen[]): Check {
  const hook = (phase: string) => (i: CheckInput): Promise<CheckOutcome> => {
    seen.push({ phase, mailFrom: i.mailFrom, recipients: i.recipients, state: i.state, connection: i.connection, verdicts: [...i.state.verdicts] });
    return Promise.resolve({ verdicts: [`${name}.${phase}`] });
  };
  return { name, connect: hook("connect"), helo: hook("helo"), mail: hook("mail"), rcpt: hook("rcpt"), data: hook("data") };
}

function setup() {
  const { dir, cleanup } = tempDir();
  const log = captureLogger();
  const config = CONFIG(dir);
  const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger });
  const sink = new MessageSink({ spool, shard: 0, hostname: config.server.hostname, authservId: config.server.hostname, local: config.local });
  const inboundSeen: Seen[] = [];
  const contentSeen: Seen[] = [];
  const inbound = new CheckRunner([recorder("in", inboundSeen)], VERDICT_DEFAULTS, 1000);
  const content = new CheckRunner([{ name: "ct", data: recorder("ct", contentSeen).data }], VERDICT_DEFAULTS, 1000);
  return { config, sink, spool, log, inbound, content, inboundSeen, contentSeen, done: () => (spool.close(), cleanup()) };
}

function info(over: Partial<ConnectionInfo> = {}): ConnectionInfo {
  return { sessionId: "s1", listener: "smtp", clientIp: "198.51.100.1", clientPort: 1234, helo: "client.test", protocol: "ESMTP", channelBinding: undefined, scratch: {}, logger: captureLogger().logger, ...over };
}

const envelope = (from: string, rcpts: string[]) => ({ mailFrom: from, recipients: rcpts.map((address) => ({ address, dsn: {} })), smtputf8: false });
const MESSAGE = Buffer.from("From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n");

test("roles: authenticated → submission, trusted network → trusted, else mx; inbound checks only for mx on the MX listener, content checks for all", async () => {
  const s = setup();
  try {
    const owned = new Set(["user@example.test"]);
    const p = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound: s.inbound, content: s.content, maySendAs: (account, a) => account === "user@example.test" && owned.has(a) });
    const cases: { readonly over: Partial<ConnectionInfo>; readonly role: string; readonly inbound: boolean }[] = [
      { over: {}, role: "mx", inbound: true },
      { over: { listener: "submission" }, role: "mx", inbound: false },
      { over: { clientIp: "192.0.2.99" }, role: "trusted", inbound: false },
      { over: { authUser: "user@example.test" }, role: "submission", inbound: false },
      { over: { authUser: "user@example.test", listener: "submission", clientIp: "192.0.2.99" }, role: "submission", inbound: false },
    ];
    for (const c of cases) {
      s.inboundSeen.length = 0;
      s.contentSeen.length = 0;
      const i = info(c.over);
      assert.equal(p.roleOf(i), c.role, JSON.stringify(c.over));
      const t = p.open(i, "user@example.test");
      assert.equal(t.role, c.role);
      assert.equal((await t.mail("user@example.test")).reply.code, 250);
      assert.equal((await t.rcpt("user@example.test", 0)).reply.code, 250);
      const d = await t.data(envelope("user@example.test", ["user@example.test"]), Buffer.from("From: user@example.test\r\n\r\nx\r\n"));
      assert.equal(d.reply.code, 250, d.reply.lines.join(" "));
      assert.deepEqual(s.inboundSeen.map((x) => x.phase), c.inbound ? ["connect", "helo", "mail", "rcpt", "data"] : [], JSON.stringify(c.over));
      assert.deepEqual(s.contentSeen.map((x) => x.phase), ["data"]);
    }
    // Relay: a remote recipient is refused to mx, taken from trusted and submission.
    assert.equal((await p.open(info(), "a@b.test").rcpt("x@remote.test", 0)).reply.code, 554);
    assert.equal((await p.open(info({ clientIp: "192.0.2.99" }), "a@b.test").rcpt("x@remote.test", 0)).reply.code, 250);
    assert.equal((await p.open(info({ authUser: "user@example.test" }), "user@example.test").rcpt("x@remote.test", 0)).reply.code, 250);
    // Ownership only on submission: the same foreign sender is fine on mx, 553 for the account.
    assert.equal((await p.open(info({ clientIp: "192.0.2.99" }), "ceo@bank.test").mail("ceo@bank.test")).reply.code, 250);
    assert.deepEqual((await p.open(info({ authUser: "user@example.test" }), "ceo@bank.test").mail("ceo@bank.test")).reply.status, "5.7.1");
    // The From: header of submission too (550 5.7.1 at the end of content), not of trusted clients.
    const foreign = Buffer.from("From: ceo@bank.test\r\n\r\nx\r\n");
    const sub = p.open(info({ authUser: "user@example.test" }), "user@example.test");
    assert.equal((await sub.data(envelope("user@example.test", ["user@example.test"]), foreign)).reply.code, 550);
    const trusted = p.open(info({ clientIp: "192.0.2.99" }), "ceo@bank.test");
    assert.equal((await trusted.data(envelope("ceo@bank.test", ["user@example.test"]), foreign)).reply.code, 250);
  } finally {
    s.done();
  }
});

test("state: typed and shared by the phases of one transaction; a new transaction gets a new one, the connection's state stays", async () => {
  const s = setup();
  try {
    const p = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound: s.inbound, content: s.content });
    const i = info();
    const t = p.open(i, "a@b.test");
    await t.mail("a@b.test");
    await t.rcpt("user@example.test", 0);
    await t.rcpt("other@example.test", 1);
    await t.data(envelope("a@b.test", ["user@example.test", "other@example.test"]), MESSAGE);
    const [connect, , , rcpt1, rcpt2, data] = s.inboundSeen;
    assert.ok(connect && rcpt1 && rcpt2 && data);
    // One state object through every phase, verdicts adding up phase after phase.
    for (const x of s.inboundSeen) assert.equal(x.state, t.state);
    assert.deepEqual(connect.verdicts, []);
    assert.deepEqual(rcpt1.verdicts, ["in.connect", "in.helo", "in.mail"]);
    assert.deepEqual(rcpt2.verdicts, ["in.connect", "in.helo", "in.mail", "in.rcpt"]);
    assert.deepEqual(data.verdicts, ["in.connect", "in.helo", "in.mail", "in.rcpt", "in.rcpt"]);
    assert.equal(t.state.forwarding, false);
    // The content checks see the same transaction.
    assert.equal(s.contentSeen[0]?.state, t.state);
    // The connection's state is the scratch's, made once and kept for the next transaction.
    assert.ok(connect.connection instanceof ConnectionState);
    assert.equal(connect.connection, i.scratch.checks);
    s.inboundSeen.length = 0;
    const next = p.open(i, "c@d.test");
    await next.mail("c@d.test");
    assert.notEqual(next.state, t.state);
    assert.deepEqual(s.inboundSeen.map((x) => x.verdicts), [[], ["in.connect"], ["in.connect", "in.helo"]]);
    assert.equal(s.inboundSeen[0]?.connection, connect.connection);
    // A closed transaction answers nothing more.
    next.close();
    assert.ok(next.closed);
    assert.throws(() => next.rcpt("user@example.test", 0), /closed/);
  } finally {
    s.done();
  }
});

test("a refused recipient's verdicts do not follow the transaction", async () => {
  const s = setup();
  try {
    const seen: Seen[] = [];
    const check: Check = {
      name: "t",
      rcpt: (i) => Promise.resolve({ verdicts: [i.recipients[0] === "other@example.test" ? "t.bad" : "t.ok"] }),
      data: recorder("t", seen).data,
    };
    const p = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound: new CheckRunner([check], { ...VERDICT_DEFAULTS, "t.bad": "reject" }, 1000) });
    const t = p.open(info(), "a@b.test");
    await t.mail("a@b.test");
    assert.equal((await t.rcpt("other@example.test", 0)).reply.code, 550);
    assert.equal((await t.rcpt("user@example.test", 0)).reply.code, 250);
    assert.equal((await t.data(envelope("a@b.test", ["user@example.test"]), MESSAGE)).reply.code, 250);
    assert.deepEqual(seen[0]?.verdicts, ["t.ok"]);
  } finally {
    s.done();
  }
});

/** A host around the receiver that keeps what it saw, so the test can look at the connection's scratch between commands. */
class Watching implements SessionHost {
  scratch: ConnectionScratch | undefined;
  readonly opened: { role: string; closed: () => boolean; state: TransactionState }[] = [];
  private readonly inner: Receiver;
  constructor(inner: Receiver) {
    this.inner = inner;
  }
  connected(i: ConnectionInfo): void {
    this.inner.connected(i);
  }
  async answer(q: Question, i: ConnectionInfo): Promise<HostAnswer> {
    this.scratch = i.scratch;
    const a = await this.inner.answer(q, i);
    const t = i.scratch.transaction;
    if (q.type === "mail" && t !== undefined) this.opened.push({ role: t.role, closed: () => t.closed, state: t.state });
    return a;
  }
}

/** A line client: say() sends one command and resolves with its complete reply (bounded in time). */
async function client(port: number): Promise<{ say: (line: string) => Promise<string>; end: () => void }> {
  const socket = net.connect(port, "127.0.0.1");
  let buf = "";
  let waiter: (() => void) | undefined;
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => {
    buf += d;
    waiter?.();
  });
  const reply = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply; got ${JSON.stringify(buf)}`)), 5000);
      const check = (): void => {
        const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buf);
        if (m === null) return;
        const end = m.index + m[0].length;
        const r = buf.slice(0, end);
        buf = buf.slice(end);
        clearTimeout(timer);
        waiter = undefined;
        resolve(r);
      };
      waiter = check;
      check();
    });
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  await reply();
  return {
    say: async (line) => {
      socket.write(`${line}\r\n`);
      return reply();
    },
    end: () => socket.destroy(),
  };
}

test("on a real connection: MAIL opens a transaction, RSET closes and drops it, the next MAIL gets a fresh one; an rcpt hook sees the sender", async () => {
  const s = setup();
  const watching = new Watching(new Receiver({ config: s.config, sink: s.sink, checks: s.inbound, contentChecks: s.content }));
  const srv = await serveConnections(watching);
  const c = await client(srv.port);
  try {
    assert.match(await c.say("EHLO client.test"), /^250/m);
    assert.match(await c.say("MAIL FROM:<sender@remote.test>"), /^250 /);
    const scratch = watching.scratch;
    assert.ok(scratch !== undefined);
    const first = watching.opened[0];
    assert.ok(first !== undefined);
    assert.equal(first.role, "mx");
    assert.equal(scratch.transaction?.state, first.state, "the transaction is the connection's");
    assert.match(await c.say("RCPT TO:<user@example.test>"), /^250 /);
    // The rcpt hook saw the sender of MAIL (CheckInput.mailFrom), and the recipient.
    const rcpt = s.inboundSeen.find((x) => x.phase === "rcpt");
    assert.deepEqual([rcpt?.mailFrom, rcpt?.recipients], ["sender@remote.test", ["user@example.test"]]);
    assert.equal(first.closed(), false);
    assert.match(await c.say("RSET"), /^250 /);
    assert.equal(first.closed(), true, "RSET closed the transaction");
    assert.equal(scratch.transaction, undefined, "and dropped it");
    // A new transaction: a fresh state; its verdicts start from nothing.
    assert.match(await c.say("MAIL FROM:<>"), /^250 /);
    const second = watching.opened[1];
    assert.ok(second !== undefined);
    assert.notEqual(second.state, first.state);
    assert.deepEqual(second.state.verdicts, ["in.connect", "in.helo", "in.mail"]);
    assert.match(await c.say("RCPT TO:<user@example.test>"), /^250 /);
    const rcpt2 = s.inboundSeen.filter((x) => x.phase === "rcpt")[1];
    assert.equal(rcpt2?.mailFrom, "", "the null sender is seen as \"\"");
    assert.match(await c.say("DATA"), /^354 /);
    assert.match(await c.say("From: a@b.test\r\nSubject: s\r\n\r\nbody\r\n."), /^250 2\.0\.0 Ok: queued as/);
    assert.equal(second.closed(), true, "the message's answer ended the transaction");
    assert.equal(scratch.transaction, undefined);
    assert.match(await c.say("QUIT"), /^221 /);
  } finally {
    c.end();
    await srv.close();
    s.done();
  }
});

/** The connection's open transaction (read through a call: an assertion does not narrow it for the next read). */
function current(i: ConnectionInfo): Transaction | undefined {
  return i.scratch.transaction;
}

test("a refused MAIL ends its transaction at once; the next MAIL ends any left open", async () => {
  const s = setup();
  try {
    const refuse: Check = { name: "t", mail: (i) => Promise.resolve({ verdicts: [i.mailFrom === "bad@b.test" ? "t.fail" : "t.ok"] }) };
    const r = new Receiver({ config: s.config, sink: s.sink, checks: new CheckRunner([refuse], { ...VERDICT_DEFAULTS, "t.fail": "tempfail" }, 1000) });
    const i = info();
    const mail = (from: string): Question => ({ type: "mail", path: { address: from, local: from.split("@")[0] ?? "", domain: from.split("@")[1] ?? "", utf8: false }, envelope: envelope(from, []) });
    assert.equal((await r.answer(mail("bad@b.test"), i)).reply.code, 451);
    assert.equal(i.scratch.transaction, undefined);
    assert.equal((await r.answer(mail("good@b.test"), i)).reply.code, 250);
    const open = current(i);
    assert.equal(open?.sender, "good@b.test");
    assert.equal((await r.answer(mail("good@b.test"), i)).reply.code, 250);
    assert.equal(open?.closed, true, "the one left open was closed");
    assert.notEqual(current(i), open);
  } finally {
    s.done();
  }
});

test("end of content: one MessageHead per message, made from its content, shared by submission's From: ownership, the inbound and the content checks", async () => {
  const s = setup();
  // How often each head's author was asked for (the getter parses once and keeps it).
  const desc = Object.getOwnPropertyDescriptor(MessageHead.prototype, "author");
  const getter = (desc as { readonly get?: (this: MessageHead) => unknown } | undefined)?.get;
  assert.ok(getter);
  const asked = new WeakMap<object, number>();
  Object.defineProperty(MessageHead.prototype, "author", {
    configurable: true,
    get(this: MessageHead) {
      asked.set(this, (asked.get(this) ?? 0) + 1);
      return getter.call(this);
    },
  });
  try {
    const heads: { readonly hook: string; readonly head: MessageHead | undefined; readonly content: Buffer | undefined; readonly askedBefore: number }[] = [];
    const hook = (name: string) => (i: CheckInput): Promise<CheckOutcome> => {
      heads.push({ hook: name, head: i.head, content: i.content, askedBefore: i.head ? (asked.get(i.head) ?? 0) : -1 });
      return Promise.resolve({ verdicts: [] });
    };
    const inbound = new CheckRunner([{ name: "in", data: hook("in") }], VERDICT_DEFAULTS, 1000);
    const content = new CheckRunner([{ name: "ct", data: hook("ct") }], VERDICT_DEFAULTS, 1000);
    const p = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound, content, maySendAs: (account, a) => account === a });
    // MX: the inbound DATA hook and the content check get the same head, of the very content.
    const mx = p.open(info(), "a@b.test");
    assert.equal((await mx.data(envelope("a@b.test", ["user@example.test"]), MESSAGE)).reply.code, 250);
    assert.deepEqual(heads.map((h) => h.hook), ["in", "ct"]);
    const [inHead, ctHead] = heads;
    assert.ok(inHead?.head instanceof MessageHead);
    assert.equal(ctHead?.head, inHead.head, "one head for every check of the message");
    assert.equal(inHead.head.content, inHead.content, "made from the content the checks see");
    assert.deepEqual(inHead.head.fields, headerFields(MESSAGE));
    // Submission: the From: ownership check parsed the author on the head the checks then get.
    heads.length = 0;
    const sub = p.open(info({ authUser: "user@example.test" }), "user@example.test");
    const own = Buffer.from("From: user@example.test\r\nSubject: s\r\n\r\nx\r\n");
    assert.equal((await sub.data(envelope("user@example.test", ["other@example.test"]), own)).reply.code, 250);
    assert.deepEqual(heads.map((h) => h.hook), ["ct"]);
    assert.ok(heads[0]?.head instanceof MessageHead);
    assert.ok(heads[0].askedBefore >= 1, "sender ownership read the author from the head the checks share");
    assert.deepEqual(heads[0].head.author.mailboxes.map((m) => m.address), ["user@example.test"]);
  } finally {
    if (desc) Object.defineProperty(MessageHead.prototype, "author", desc);
    s.done();
  }
});

test("mx: with inbound checks that have no connect, helo or mail hook (only data), MAIL is answered at once, not a promise; with one, after its hooks", async () => {
  const s = setup();
  try {
    const dataOnly: Seen[] = [];
    const inbound = new CheckRunner([{ name: "d", data: recorder("d", dataOnly).data }], VERDICT_DEFAULTS, 1000);
    const p = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound, content: s.content });
    const t = p.open(info(), "a@b.test");
    const answer = t.mail("a@b.test");
    assert.ok(!(answer instanceof Promise), "MAIL answered at once");
    assert.equal(answer.reply.code, 250);
    await t.rcpt("user@example.test", 0);
    const done = await t.data(envelope("a@b.test", ["user@example.test"]), MESSAGE);
    assert.equal(done.reply.code, 250);
    assert.deepEqual(dataOnly.map((x) => x.phase), ["data"]);
    // A mail hook: the answer waits for it.
    const withMail = new Pipelines({ config: s.config, sink: s.sink, recipients: new LocalRecipients(s.config.local), inbound: s.inbound, content: s.content });
    const m = withMail.open(info(), "a@b.test").mail("a@b.test");
    assert.ok(m instanceof Promise);
    assert.equal((await m).reply.code, 250);
    assert.deepEqual(s.inboundSeen.map((x) => x.phase), ["connect", "helo", "mail"]);
  } finally {
    s.done();
  }
});
