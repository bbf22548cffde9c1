/**
 * `limits.max_handoff_bytes` end to end: a real client (swaks) sends to a
 * Wardmail whose memory handoff is off (0 bytes), so every accepted message
 * must reach its Maildir through the spool database path (claimed when due)
 * instead of the in-memory handoff; and `wardmail config check` refuses a
 * value out of range with the key, the range and the value. The spool's own
 * byte accounting is unit-tested in src/queue/spool.test.ts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { swaks } from "./helpers/swaks.ts";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const skip = peerSkip(binaryMissing("swaks", ["--version"], "swaks"));


describe("limits.max_handoff_bytes", { skip }, () => {
  let w: Wardmail | undefined;

  before(async () => {
    w = await startWardmail({ mailboxes: ["user@example.test"], workers: 1, extra: "[limits]\nmax_handoff_bytes = 0\n" });
  });

  after(async () => {
    if (w) {
      await w.stop();
      await w.cleanup();
    }
  });

  test("with the memory handoff off, every accepted message is delivered from the spool", async () => {
    assert.ok(w);
    const tokens = ["one", "two", "three"].map((n) => `handoff-off-${n}-${process.pid}`);
    for (const token of tokens) {
      const r = await swaks(["--server", `127.0.0.1:${w.smtpPort}`, "--to", "user@example.test", "--from", "a@sender.test", "--body", token]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /<- {2}250 2\.0\.0 Ok: queued as /);
    }
    const files = await w.waitForMail("user@example.test", tokens.length);
    const bodies = await Promise.all(files.map((f) => readFile(f, "latin1")));
    for (const token of tokens) assert.equal(bodies.filter((b) => b.includes(token)).length, 1, `${token} delivered once`);
  });

  test("wardmail config check refuses a value out of range", async () => {
    assert.ok(w);
    const bad = join(w.dir, "bad-handoff.toml");
    await writeFile(bad, "[limits]\nmax_handoff_bytes = -1\n");
    const r = await w.cli(["config", "check", bad]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /bad-handoff\.toml:2: limits\.max_handoff_bytes: expected an integer from 0 to 17179869184, got -1/);
  });
});
