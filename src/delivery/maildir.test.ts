import { test } from "node:test";
import assert from "node:assert/strict";
import fs, { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { deliverToMaildir, ensureMaildir, escapeHostname, folderDirName } from "./maildir.ts";
import { sampleMessage, tempDir } from "../../test/helpers/queue.ts";

const NAME_RE = /^(\d+)\.M(\d{1,6})P(\d+)Q(\d+)\.([^/:]+),S=(\d+)$/;

test("a delivery lands in new/ with Return-Path and Delivered-To first and the content byte-identical", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "mail", "example.test", "alice", "Maildir");
  const content = sampleMessage({ size: 5000 }).content;
  const res = await deliverToMaildir(md, { returnPath: "bob@example.org", deliveredTo: "alice@example.test", content });
  assert.deepEqual(readdirSync(join(md, "new")), [res.name]);
  assert.deepEqual(readdirSync(join(md, "tmp")), []);
  assert.deepEqual(readdirSync(join(md, "cur")), []);
  const stored = readFileSync(res.path);
  const head = "Return-Path: <bob@example.org>\r\nDelivered-To: alice@example.test\r\n";
  assert.equal(stored.subarray(0, head.length).toString("latin1"), head);
  assert.ok(stored.subarray(head.length).equals(content));
  const m = NAME_RE.exec(res.name);
  assert.ok(m, res.name);
  assert.equal(Number(m[6]), stored.length);
  assert.equal(res.size, stored.length);
  assert.equal(Number(m[3]), process.pid);
  assert.ok(Math.abs(Number(m[1]) - Date.now() / 1000) < 5);
  for (const sub of ["", "cur", "new", "tmp"]) assert.equal(statSync(join(md, sub)).mode & 0o777, 0o700, sub);
  assert.equal(statSync(res.path).mode & 0o777, 0o600);
});

test("the null sender is written as Return-Path: <>", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const res = await deliverToMaildir(join(dir, "md"), { returnPath: "", deliveredTo: "a@x.test", content: Buffer.from("Subject: x\r\n\r\nhi\r\n") });
  assert.equal(readFileSync(res.path, "latin1"), "Return-Path: <>\r\nDelivered-To: a@x.test\r\nSubject: x\r\n\r\nhi\r\n");
});

test("200 parallel deliveries get 200 unique files, all intact, tmp/ empty", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "md");
  const contents = Array.from({ length: 200 }, (_, i) => Buffer.from(`Subject: ${i}\r\n\r\nmessage ${i}\r\n`));
  const results = await Promise.all(contents.map((content) => deliverToMaildir(md, { returnPath: "s@x.test", deliveredTo: "r@x.test", content })));
  const names = readdirSync(join(md, "new"));
  assert.equal(names.length, 200);
  assert.equal(new Set(results.map((r) => r.name)).size, 200);
  assert.deepEqual(readdirSync(join(md, "tmp")), []);
  results.forEach((r, i) => assert.ok(readFileSync(r.path).toString("latin1").endsWith(`message ${i}\r\n`)));
});

test("host names are escaped as Dovecot does", async (t) => {
  assert.equal(escapeHostname("mx/1:2"), "mx\\0571\\0722");
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const res = await deliverToMaildir(join(dir, "md"), { returnPath: "", deliveredTo: "a@x.test", content: Buffer.from("x\r\n") }, { hostname: "a/b:c" });
  assert.match(res.name, /\.a\\057b\\072c,S=\d+$/);
});

test("Maildir++ folders are created by name and can be delivered to", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "md");
  const junk = await ensureMaildir(md, "Junk");
  assert.equal(junk, join(md, ".Junk"));
  for (const sub of ["cur", "new", "tmp"]) assert.ok(statSync(join(md, sub)).isDirectory() && statSync(join(junk, sub)).isDirectory());
  assert.equal(readFileSync(join(junk, "maildirfolder"), "utf8"), "");
  const res = await deliverToMaildir(md, { returnPath: "", deliveredTo: "a@x.test", content: Buffer.from("x\r\n") }, { folder: "Archive.2024" });
  assert.equal(res.path, join(md, ".Archive.2024", "new", res.name));
  for (const bad of ["", "../x", ".x", "a/b", "a..b", "x.", "a\0b"]) assert.throws(() => folderDirName(bad), /bad Maildir\+\+ folder name/, bad);
});

test("a Maildir removed while running is created again", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "md");
  const msg = { returnPath: "", deliveredTo: "a@x.test", content: Buffer.from("x\r\n") };
  await deliverToMaildir(md, msg);
  rmSync(md, { recursive: true });
  const res = await deliverToMaildir(md, msg);
  assert.deepEqual(readdirSync(join(md, "new")), [res.name]);
});

test("a Maildir path that is a file fails with the errno code and leaves nothing", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "md");
  writeFileSync(md, "not a directory");
  await assert.rejects(deliverToMaildir(md, { returnPath: "", deliveredTo: "a@x.test", content: Buffer.from("x\r\n") }), { code: "ENOTDIR" });
  assert.equal(readFileSync(md, "utf8"), "not a directory");
});

test("addresses with CR or LF cannot add header lines", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "md");
  await assert.rejects(deliverToMaildir(md, { returnPath: "a@x\r\nX-Evil: 1", deliveredTo: "a@x.test", content: Buffer.from("x\r\n") }), /CR, LF or NUL/);
  await assert.rejects(deliverToMaildir(md, { returnPath: "", deliveredTo: "a@x.test\nX: y", content: Buffer.from("x\r\n") }), /CR, LF or NUL/);
});

test("durability: the tmp file is opened O_SYNC|O_EXCL and written in one writev before the link, then new/ is fsynced (the calls of one delivery, in order)", async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const md = join(dir, "Maildir");
  await ensureMaildir(md);
  // node:fs's named exports follow its CommonJS object after syncBuiltinESMExports().
  const calls: string[] = [];
  const real = { open: fs.open, writev: fs.writev, link: fs.link, fsync: fs.fsync };
  const fds = new Map<number, string>();
  const kind = (path: string): string => (path.startsWith(join(md, "tmp") + "/") ? "tmp" : path === join(md, "new") ? "new/" : path);
  const wrap = <A extends unknown[]>(name: string, fn: (...args: A) => void, describe: (...args: A) => string) =>
    ((...args: A) => {
      calls.push(`${name} ${describe(...args)}`);
      fn(...args);
    }) as never;
  fs.open = wrap("open", (path: string, flags: number, ...rest: unknown[]) => {
    const cb = rest.at(-1) as (err: Error | null, fd: number) => void;
    (real.open as (...a: unknown[]) => void)(path, flags, ...rest.slice(0, -1), (err: Error | null, fd: number) => {
      if (!err) fds.set(fd, kind(path));
      cb(err, fd);
    });
  }, (path: string, flags: number) => `${kind(path)} sync=${(flags & fs.constants.O_SYNC) === fs.constants.O_SYNC} excl=${(flags & fs.constants.O_EXCL) !== 0}`);
  fs.writev = wrap("writev", real.writev as (...a: unknown[]) => void, (fd: unknown) => String(fds.get(fd as number)));
  fs.link = wrap("link", real.link as (...a: unknown[]) => void, () => "");
  fs.fsync = wrap("fsync", real.fsync as (...a: unknown[]) => void, (fd: unknown) => String(fds.get(fd as number)));
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, real);
    syncBuiltinESMExports();
  });
  const res = await deliverToMaildir(md, { returnPath: "bob@example.org", deliveredTo: "alice@example.test", content: sampleMessage().content });
  assert.deepEqual(calls.map((c) => c.trim()), ["open tmp sync=true excl=true", "writev tmp", "link", "open new/ sync=false excl=false", "fsync new/"]);
  assert.ok(statSync(res.path).size === res.size);
});
