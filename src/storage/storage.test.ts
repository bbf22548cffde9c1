/**
 * Schema versions: a fresh file gets the schema, an older one is migrated
 * by ordered steps in one transaction (a failing step changes nothing), a
 * missing step or a newer file is refused with a clear error — and every
 * Wardmail database (accounts, spool shard, MTA-STS cache, TLS-RPT) refuses
 * a file written by a newer Wardmail.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { AccountStore } from "../accounts/index.ts";
import { SqliteMtaStsStore, TlsRptStore } from "../outbound/index.ts";
import { ShardStore, shardPath, SPOOL_SCHEMA_VERSION } from "../queue/index.ts";
import { openDatabase, type Migration } from "./index.ts";

const V1 = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)";
const V3 = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, author TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL DEFAULT 0)";
const STEPS: Migration[] = [
  { to: 2, up: "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT ''" },
  { to: 3, up: (db) => db.exec("ALTER TABLE notes ADD COLUMN created INTEGER NOT NULL DEFAULT 0; UPDATE notes SET created = 7") },
];

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "wardmail-storage-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const open = (path: string, version: number, schema: string, migrations?: readonly Migration[]): DatabaseSync =>
  openDatabase(path, { create: true, what: "test database", schema, version, pragmas: [], ...(migrations !== undefined ? { migrations } : {}) });

function version(db: DatabaseSync): number {
  return Number(db.prepare("PRAGMA user_version").get()?.user_version);
}

/** A version-1 file with one row, as an older release left it. */
function oldFile(path: string): void {
  const db = open(path, 1, V1);
  db.prepare("INSERT INTO notes (body) VALUES (?)").run("kept");
  db.close();
}

void test("a fresh file gets the schema and the version", () =>
  withDir((dir) => {
    const db = open(join(dir, "a.db"), 3, V3, STEPS);
    assert.equal(version(db), 3);
    db.prepare("INSERT INTO notes (body, author) VALUES ('x', 'y')").run();
    db.close();
  }));

void test("an older file is migrated by the ordered steps; its rows are kept", () =>
  withDir((dir) => {
    const path = join(dir, "a.db");
    oldFile(path);
    const db = open(path, 3, V3, STEPS);
    assert.equal(version(db), 3);
    assert.deepEqual({ ...db.prepare("SELECT body, author, created FROM notes").get() }, { body: "kept", author: "", created: 7 });
    db.close();
    // Opening again changes nothing.
    const again = open(path, 3, V3, STEPS);
    assert.equal(version(again), 3);
    again.close();
  }));

void test("a failing step leaves the file at its old version, unchanged", () =>
  withDir((dir) => {
    const path = join(dir, "a.db");
    oldFile(path);
    const broken: Migration[] = [STEPS[0] as Migration, { to: 3, up: "ALTER TABLE missing ADD COLUMN x" }];
    assert.throws(() => open(path, 3, V3, broken), /test database .*a\.db: migration to schema version 3 failed \(nothing changed\): no such table: missing/);
    const db = new DatabaseSync(path);
    assert.equal(version(db), 1);
    const columns = (db.prepare("PRAGMA table_info(notes)").all() as { name: string }[]).map((c) => c.name);
    assert.deepEqual(columns, ["id", "body"], "step 2 rolled back too");
    db.close();
  }));

void test("a missing step, or a newer file, is refused with a clear error", () =>
  withDir((dir) => {
    const path = join(dir, "a.db");
    oldFile(path);
    assert.throws(() => open(path, 3, V3, [STEPS[1] as Migration]), /has schema version 1: this Wardmail \(3\) has no migration for 2/);
    const newer = new DatabaseSync(path);
    newer.exec("PRAGMA user_version = 4");
    newer.close();
    assert.throws(() => open(path, 3, V3, STEPS), /test database .*a\.db has schema version 4, newer than this Wardmail \(3\)/);
    assert.throws(() => open(join(dir, "b.db"), 3, V3, [...STEPS].reverse()), /migration steps must lead in increasing order/);
  }));

void test("every Wardmail database refuses a file written by a newer Wardmail", () =>
  withDir((dir) => {
    // [what, file, opener, the version this code writes]
    const openers: [string, string, () => { close(): void } | void, number][] = [
      ["accounts database", join(dir, "accounts.sqlite"), () => AccountStore.open(dir, { create: true, localDomains: ["example.test"] }), 1],
      ["MTA-STS cache", join(dir, "mta-sts.sqlite"), () => SqliteMtaStsStore.open(dir), 1],
      ["TLS-RPT database", join(dir, "tlsrpt.sqlite"), () => TlsRptStore.open(dir), 1],
      ["spool database", shardPath(dir, 0), () => ShardStore.openFile(shardPath(dir, 0)), SPOOL_SCHEMA_VERSION],
    ];
    // The administrative opener never creates a shard: an empty file (a valid empty database) stands for a new one.
    mkdirSync(join(dir, "spool"), { recursive: true });
    writeFileSync(shardPath(dir, 0), "");
    for (const [what, path, openIt, current] of openers) {
      const first = openIt();
      first?.close();
      const db = new DatabaseSync(path);
      assert.equal(version(db), current, what);
      db.exec("PRAGMA user_version = 99");
      db.close();
      assert.throws(() => openIt(), new RegExp(`${what} .* has schema version 99, newer than this Wardmail \\(${current}\\)`), what);
    }
  }));
