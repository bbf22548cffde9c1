// Routes decided once by the sink and stored with each recipient: what the
// Router decides for each kind of address, and that the spool keeps it
// (sealed with the envelope, and in the plaintext format too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Spool } from "../queue/index.ts";
import { captureLogger, tempDir } from "../../test/helpers/queue.ts";
import { MessageSink, REMOTE_NOT_IMPLEMENTED, Router, type LocalConfig } from "./index.ts";

const LOCAL: LocalConfig = {
  domains: ["example.test", "lmtp.test"],
  mailboxes: ["alice@example.test", "bob@example.test", "carol@lmtp.test", "../x@example.test"],
  aliases: {
    "team@example.test": ["alice@example.test", "carol@lmtp.test", "alice@example.test"],
    "fwd@example.test": ["bob@example.test", "far@remote.test", "noreply@example.test"],
    "quiet@example.test": ["noreply@example.test"],
    "loop@example.test": ["loop@example.test"],
  },
  discard: ["noreply@example.test"],
  maildir: "mail/%d/%n/Maildir",
  lmtp: { "lmtp.test": { path: "/run/dovecot/lmtp" } },
};

test("Router: every kind of route, with the Maildir path key (relative to the data directory) or the LMTP server stored per mailbox", () => {
  const r = new Router({ local: LOCAL, isAccount: (a) => a === "acct@example.test" });
  assert.deepEqual(r.routeInPlace("Alice@Example.test"), { kind: "local", mailboxes: [{ mailbox: "alice@example.test", maildir: "mail/example.test/alice/Maildir" }] });
  assert.deepEqual(r.routeInPlace("acct@example.test"), { kind: "local", mailboxes: [{ mailbox: "acct@example.test", maildir: "mail/example.test/acct/Maildir" }] });
  assert.deepEqual(r.routeInPlace("team@example.test"), {
    kind: "local",
    mailboxes: [
      { mailbox: "alice@example.test", maildir: "mail/example.test/alice/Maildir" },
      { mailbox: "carol@lmtp.test", lmtp: { path: "/run/dovecot/lmtp" } },
    ],
  });
  assert.deepEqual(r.routeInPlace("quiet@example.test"), { kind: "discard" });
  assert.deepEqual(r.routeInPlace("x@Remote.test"), { kind: "remote", domain: "remote.test" });
  assert.deepEqual(r.routeInPlace("nobody@example.test"), { kind: "failed", reason: "no such mailbox" });
  assert.deepEqual(r.routeInPlace("loop@example.test"), { kind: "failed", reason: "alias loop" });
  // In place (a record queued before routes were stored), an alias reaching another domain cannot be split.
  assert.deepEqual(r.routeInPlace("fwd@example.test"), { kind: "deferred", reason: REMOTE_NOT_IMPLEMENTED });
  assert.equal(r.routeInPlace("../x@example.test").kind, "deferred", "a path that would leave its directory is never stored");
  assert.deepEqual(new Router({ local: { ...LOCAL, maildir: "/srv/vmail/%d/%n" }, dataDir: "/data" }).routeInPlace("bob@example.test"), { kind: "local", mailboxes: [{ mailbox: "bob@example.test", maildir: "/srv/vmail/example.test/bob" }] });
  // The loaded config makes local.maildir absolute under server.data_dir: stored relative to it again.
  assert.deepEqual(new Router({ local: { ...LOCAL, maildir: "/data/mail/%d/%n" }, dataDir: "/data/" }).routeInPlace("bob@example.test"), { kind: "local", mailboxes: [{ mailbox: "bob@example.test", maildir: "mail/example.test/bob" }] });

  const x = r.expand({ address: "fwd@example.test", dsn: { notify: ["FAILURE"] } });
  assert.equal(x.forwards, true);
  assert.deepEqual(
    x.recipients.map((t) => [t.address, t.dsn.orcpt, t.route?.kind]),
    [
      ["bob@example.test", "rfc822;fwd@example.test", "local"],
      ["noreply@example.test", "rfc822;fwd@example.test", "discard"],
      ["far@remote.test", "rfc822;fwd@example.test", "remote"],
    ],
  );
});

for (const encrypt of [true, false]) {
  test(`the sink stores each recipient's route in the queue record (${encrypt ? "sealed" : "plaintext"} format); alias targets that lead nowhere are logged once`, async (t) => {
    const { dir, cleanup } = tempDir();
    const log = captureLogger();
    const spool = Spool.open({ dataDir: dir, shard: 0, logger: log.logger, encrypt });
    t.after(() => (spool.close(), cleanup()));
    const local = { ...LOCAL, aliases: { ...LOCAL.aliases, "typo@example.test": ["alice@example.test", "nobdy@example.test"] } };
    const sink = new MessageSink({ spool, shard: 0, hostname: "mx.test", authservId: "mx.test", local, logger: log.logger });
    const txn = sink.begin({ mailFrom: "a@b.test", smtputf8: false }, { kind: "local", source: "dsn", ref: "x" });
    for (const address of ["team@example.test", "fwd@example.test", "typo@example.test", "x@remote.test"]) txn.add({ address, dsn: {} });
    const { id } = await txn.commit(Buffer.from("From: a@b.test\r\n\r\nhi\r\n"));
    const e = spool.admin.get(id)!;
    assert.deepEqual(
      e.recipients.map((r) => [r.address, r.route]),
      [
        ["team@example.test", { kind: "local", mailboxes: [{ mailbox: "alice@example.test", maildir: `mail/example.test/alice/Maildir` }, { mailbox: "carol@lmtp.test", lmtp: { path: "/run/dovecot/lmtp" } }] }],
        ["bob@example.test", { kind: "local", mailboxes: [{ mailbox: "bob@example.test", maildir: `mail/example.test/bob/Maildir` }] }],
        ["noreply@example.test", { kind: "discard" }],
        ["far@remote.test", { kind: "remote", domain: "remote.test" }],
        ["typo@example.test", { kind: "local", mailboxes: [{ mailbox: "alice@example.test", maildir: `mail/example.test/alice/Maildir` }] }],
        ["x@remote.test", { kind: "remote", domain: "remote.test" }],
      ],
    );
    assert.deepEqual(
      log.lines.filter((l) => l.msg === "alias target skipped").map((l) => [l.rcpt, l.target, l.reason]),
      [["typo@example.test", "nobdy@example.test", "no such mailbox"]],
    );
  });
}
