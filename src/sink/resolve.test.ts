// Alias resolution under [local] (resolve.ts), which the sink's router runs
// once per recipient when a message is queued (moved here from the queue
// manager's tests when routing moved to the sink).
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveRecipient } from "./index.ts";
import { ALIAS_LOCAL as LOCAL } from "../../test/helpers/queue.ts";


test("resolveRecipient: discarded addresses, directly and through an alias", () => {
  assert.deepEqual(resolveRecipient(LOCAL, "NoReply@example.test"), { mailboxes: [], discarded: ["noreply@example.test"], remote: [], skipped: [] });
  assert.deepEqual(resolveRecipient(LOCAL, "quiet@example.test"), { mailboxes: ["alice@example.test"], discarded: ["noreply@example.test"], remote: [], skipped: [] });
});

test("resolveRecipient: mailboxes, recursive case-insensitive aliases, loops, remote and unknown", () => {
  assert.deepEqual(resolveRecipient(LOCAL, "ALICE@example.TEST"), { mailboxes: ["alice@example.test"], discarded: [], remote: [], skipped: [] });
  const team = resolveRecipient(LOCAL, "Team@Example.Test");
  assert.deepEqual(team.mailboxes, ["alice@example.test", "bob@example.test", "carol@other.test"]);
  assert.deepEqual(team.remote, []);
  const loop = resolveRecipient(LOCAL, "loop1@example.test");
  assert.deepEqual(loop.mailboxes, []);
  assert.deepEqual(loop.skipped, [{ address: "loop1@example.test", reason: "alias loop" }]);
  assert.deepEqual(resolveRecipient(LOCAL, "x@remote.test").remote, ["x@remote.test"]);
  const ext = resolveRecipient(LOCAL, "ext@example.test");
  assert.deepEqual([ext.mailboxes, ext.remote], [["bob@example.test"], ["someone@remote.test"]]);
  assert.deepEqual(resolveRecipient(LOCAL, "nobody@example.test").skipped, [{ address: "nobody@example.test", reason: "no such mailbox" }]);
  const typo = resolveRecipient(LOCAL, "typo@example.test");
  assert.deepEqual([typo.mailboxes, typo.skipped.length], [["carol@other.test"], 1]);
  assert.deepEqual(resolveRecipient(LOCAL, "Postmaster").mailboxes, ["postmaster@example.test"]);
  assert.deepEqual(resolveRecipient(LOCAL, "constructor@example.test").skipped[0]?.reason, "no such mailbox");
  const deep: Record<string, string[]> = {};
  for (let i = 0; i < 30; i++) deep[`a${i}@example.test`] = [`a${i + 1}@example.test`];
  deep["a30@example.test"] = ["alice@example.test"];
  assert.deepEqual(resolveRecipient({ ...LOCAL, aliases: deep }, "a0@example.test").skipped[0]?.reason, "aliases nested too deep");
});

test("resolveRecipient: the config's lists are read as sets made once per list; a list replaced is read anew", () => {
  const local = { ...LOCAL, mailboxes: ["a@example.test"] };
  assert.deepEqual(resolveRecipient(local, "a@example.test").mailboxes, ["a@example.test"]);
  assert.deepEqual(resolveRecipient(local, "b@example.test").skipped, [{ address: "b@example.test", reason: "no such mailbox" }]);
  const replaced = local as { mailboxes: readonly string[] };
  replaced.mailboxes = ["b@example.test"];
  assert.deepEqual(resolveRecipient(local, "b@example.test").mailboxes, ["b@example.test"]);
  assert.deepEqual(resolveRecipient(local, "a@example.test").mailboxes, []);
});
