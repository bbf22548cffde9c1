import { test } from "node:test";
import assert from "node:assert/strict";
import { mailboxPath, mailboxPathKey, maildirOf } from "./index.ts";

test("mailboxPath fills the template and refuses parts that leave their directory", () => {
  assert.equal(mailboxPath("/data", "mail/%d/%n/Maildir", "alice@example.test"), "/data/mail/example.test/alice/Maildir");
  assert.equal(mailboxPath("/data", "/srv/vmail/%d/%n%%", "a@b.test"), "/srv/vmail/b.test/a%");
  assert.throws(() => mailboxPath("/data", "mail/%d/%n", "../x@b.test"), /unsafe local part/);
  assert.throws(() => mailboxPath("/data", "mail/%d/%n", "..@b.test"), /unsafe local part/);
  assert.throws(() => mailboxPath("/data", "mail/%d/%n", "a@b/../../etc"), /unsafe domain/);
});

test("mailboxPathKey: the filled template, relative unless absolute; maildirOf resolves it against the data directory", () => {
  assert.equal(mailboxPathKey("mail/%d/%n/Maildir", "alice@example.test"), "mail/example.test/alice/Maildir");
  assert.equal(mailboxPathKey("/srv/vmail/%d/%n", "a@b.test"), "/srv/vmail/b.test/a");
  assert.equal(maildirOf("/data", "mail/example.test/alice/Maildir"), "/data/mail/example.test/alice/Maildir");
  assert.equal(maildirOf("/data", "/srv/vmail/b.test/a"), "/srv/vmail/b.test/a");
  assert.throws(() => mailboxPathKey("mail/%d/%n", "../x@b.test"), /unsafe local part/);
});
