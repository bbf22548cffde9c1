import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { statSync } from "node:fs";
import { tempDir } from "../../test/helpers/queue.ts";
import { SqliteMtaStsStore } from "./mta-sts-store.ts";

test("MTA-STS policies survive a reopen; damaged rows are ignored; the file is 0600", () => {
  const { dir, cleanup } = tempDir();
  try {
    const a = SqliteMtaStsStore.open(dir);
    a.set("example.test", { mode: "enforce", mx: ["mx.example.test", "*.example.test"], maxAge: 86400, id: "20261127" }, 1000);
    a.close();
    const b = SqliteMtaStsStore.open(dir);
    assert.deepEqual(b.get("example.test"), { policy: { mode: "enforce", mx: ["mx.example.test", "*.example.test"], maxAge: 86400, id: "20261127" }, fetchedAt: 1000 });
    assert.equal(b.get("other.test"), undefined);
    b.close();
    const raw = new DatabaseSync(SqliteMtaStsStore.path(dir));
    raw.prepare("UPDATE policies SET policy = ? WHERE domain = ?").run('{"mode":"sometimes"}', "example.test");
    raw.close();
    const c = SqliteMtaStsStore.open(dir);
    assert.equal(c.get("example.test"), undefined);
    c.close();
    assert.equal(statSync(SqliteMtaStsStore.path(dir)).mode & 0o777, 0o600);
  } finally {
    cleanup();
  }
});
