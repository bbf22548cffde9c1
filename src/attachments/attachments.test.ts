// The attachment policy's detectors and walk, on samples built here (zips by
// the test writer and by Info-ZIP's `zip` when present), and its check's
// per-domain / per-mailbox overrides.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { skipOrFail } from "../../test/helpers/peers.ts";
import { elfFile, isoImage, machoFile, mimeMessage, oleWithMacro, ooxml, pdfFile, peFile, pngFile, rar4, rar5, sevenZip, zip } from "../../test/helpers/samples.ts";
import { AttachmentCheck, nameFindings, plainText, shownName, strictest, walkMessage, type AttachmentOptions } from "./index.ts";
import { TransactionState } from "../policy/index.ts";

const LIMITS = { maxDepth: 5, maxArchiveEntries: 1000, maxUnpacked: 64 * 1024 * 1024 };

async function kinds(attachments: Parameters<typeof mimeMessage>[0]["attachments"], limits = LIMITS): Promise<string[]> {
  const found = await walkMessage(mimeMessage({ attachments }), limits);
  return [...new Set(found.map((f) => f.kind))].sort();
}

void test("names: executables, double extensions, trailing dots, bidi overrides, disk images, macro files", () => {
  const k = (n: string): string[] => nameFindings(n).map((f) => f.kind);
  assert.deepEqual(k("setup.exe"), ["executable"]);
  assert.match(nameFindings("invoice.pdf.exe")[0]?.reason ?? "", /double extension \(\.pdf\.exe\)/);
  assert.deepEqual(k("INVOICE.PDF.SCR"), ["executable"]);
  assert.deepEqual(k("run.bat. . "), ["executable"]);
  assert.deepEqual(k("dir/sub/x.js"), ["executable"]);
  assert.deepEqual(k("invoice\u202Efdp.exe"), ["executable", "executable"]);
  assert.deepEqual(k("photo\u202Egnp.txt"), ["executable"]);
  assert.match(nameFindings("a\u202Eb.txt")[0]?.reason ?? "", /U\+202E/);
  assert.deepEqual(k("disk.iso"), ["disk_image"]);
  assert.deepEqual(k("vm.VHDX"), ["disk_image"]);
  assert.deepEqual(k("budget.xlsm"), ["macro"]);
  for (const fine of ["report.pdf", "photo.jpg", "notes.txt", "archive.zip", "README", "", "data.tar.gz", "a.docx"]) assert.deepEqual(k(fine), [], fine);
});

void test("content: PE, ELF, Mach-O, scripts, ISO images and OLE2 macros by their bytes, whatever the name", async () => {
  assert.deepEqual(await kinds([{ name: "report.pdf", data: peFile() }]), ["executable"]);
  assert.deepEqual(await kinds([{ name: "photo.jpg", data: elfFile() }]), ["executable"]);
  assert.deepEqual(await kinds([{ name: "data.bin", data: machoFile() }]), ["executable"]);
  assert.deepEqual(await kinds([{ name: "notes.txt", data: Buffer.from("#!/bin/sh\nrm -rf ~\n"), type: "text/plain" }]), ["executable"]);
  assert.deepEqual(await kinds([{ name: "backup.dat", data: isoImage() }]), ["disk_image"]);
  assert.deepEqual(await kinds([{ name: "letter.doc", data: oleWithMacro() }]), ["macro"]);
  assert.deepEqual(await kinds([{ name: "letter.docx", data: ooxml(true) }]), ["macro"]);
  // Harmless files and an Office file without macros.
  assert.deepEqual(await kinds([{ name: "report.pdf", data: pdfFile(), type: "application/pdf" }, { name: "photo.png", data: pngFile(), type: "image/png" }, { name: "letter.docx", data: ooxml(false) }]), []);
  // A message's own text that quotes a script is not an attachment.
  assert.deepEqual((await walkMessage(mimeMessage({ text: "#!/bin/sh\necho hi" }), LIMITS)).map((f) => f.kind), []);
});

void test("zips: executables inside, nested zips, encrypted entries, depth, entries and unpacked-byte budgets", async () => {
  assert.deepEqual(await kinds([{ name: "docs.zip", data: zip([{ name: "a.txt", data: Buffer.from("hi") }, { name: "invoice.pdf.exe", data: Buffer.from("x") }]) }]), ["executable"]);
  // Found by content inside a zip with a harmless name.
  assert.deepEqual(await kinds([{ name: "docs.zip", data: zip([{ name: "readme.txt", data: peFile() }]) }]), ["executable"]);
  const inner = zip([{ name: "tool.exe", data: peFile() }]);
  const nested = zip([{ name: "inner.zip", data: inner }]);
  const found = await walkMessage(mimeMessage({ attachments: [{ name: "outer.zip", data: nested }] }), LIMITS);
  assert.ok(found.some((f) => f.kind === "executable" && f.name === "outer.zip/inner.zip/tool.exe"), JSON.stringify(found));
  assert.deepEqual(await kinds([{ name: "outer.zip", data: zip([{ name: "x.zip", data: nested }]) }], { ...LIMITS, maxDepth: 2 }), ["unscannable"]);
  assert.deepEqual(await kinds([{ name: "secret.zip", data: zip([{ name: "a.txt", data: Buffer.from("x"), encrypted: true, store: true }]) }]), ["encrypted_archive"]);
  const many = zip(Array.from({ length: 30 }, (_, i) => ({ name: `f${i}.txt`, data: Buffer.from("x") })));
  assert.deepEqual(await kinds([{ name: "many.zip", data: many }], { ...LIMITS, maxArchiveEntries: 10 }), ["unscannable"]);
  // A zip bomb: zips that must be opened (containers are unpacked whole) of 10 MB each, deflated to a few KB.
  // A plain big entry is no bomb here: only its first 64 KiB are unpacked.
  let bomb = zip([{ name: "zeros", data: Buffer.alloc(10 * 1024 * 1024), store: true }]);
  bomb = zip(Array.from({ length: 5 }, (_, i) => ({ name: `z${i}.zip`, data: bomb })));
  const t0 = performance.now();
  assert.deepEqual(await kinds([{ name: "bomb.zip", data: bomb }], { ...LIMITS, maxUnpacked: 1024 * 1024 }), ["unscannable"]);
  assert.ok(performance.now() - t0 < 5000);
  // A big ordinary entry is read only as far as its first 64 KiB: well within a 1 MB budget.
  assert.deepEqual(await kinds([{ name: "big.zip", data: zip([{ name: "zeros.txt", data: Buffer.alloc(10 * 1024 * 1024) }]) }], { ...LIMITS, maxUnpacked: 1024 * 1024 }), []);
  // Malformed: a zip signature and garbage.
  assert.deepEqual(await kinds([{ name: "broken.zip", data: Buffer.concat([Buffer.from("PK\x03\x04", "latin1"), Buffer.alloc(100, 0x41)]) }]), ["unscannable"]);
});

void test("an encrypted zip written by Info-ZIP's zip -e", async (t) => {
  if (spawnSync("zip", ["-v"], { stdio: "ignore" }).error) return skipOrFail(t, "zip cannot be run: install the Debian package zip");
  const dir = await mkdtemp(join(tmpdir(), "wardmail-zip-"));
  try {
    await writeFile(join(dir, "report.txt"), "quarterly numbers");
    const r = spawnSync("zip", ["-q", "-e", "-P", "secret", "out.zip", "report.txt"], { cwd: dir });
    assert.equal(r.status, 0, String(r.stderr));
    assert.deepEqual(await kinds([{ name: "report.zip", data: await readFile(join(dir, "out.zip")) }]), ["encrypted_archive"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("attached messages are walked, to max_depth", async () => {
  const inner = mimeMessage({ attachments: [{ name: "tool.exe", data: peFile() }] });
  const outer = Buffer.concat([
    Buffer.from('From: a@example.net\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n'),
    inner,
    Buffer.from("\r\n--b--\r\n"),
  ]);
  assert.deepEqual([...new Set((await walkMessage(outer, LIMITS)).map((f) => f.kind))], ["executable"]);
  assert.deepEqual([...new Set((await walkMessage(outer, { ...LIMITS, maxDepth: 0 })).map((f) => f.kind))], ["unscannable"]);
});

void test("hostile MIME: broken base64, bare bytes, deep multipart nesting end in a verdict or nothing, never a throw", async () => {
  const broken = Buffer.from('From: a@b\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: application/octet-stream; name="a.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!====\x00\xff\r\n');
  assert.deepEqual([...new Set((await walkMessage(broken, LIMITS)).map((f) => f.kind))], ["executable"]);
  let deep = "";
  for (let i = 0; i < 2000; i++) deep += `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n`;
  const t0 = performance.now();
  const found = await walkMessage(Buffer.from(`From: a@b\r\n${deep}\r\nend\r\n`), LIMITS);
  assert.ok(performance.now() - t0 < 5000);
  assert.ok(found.every((f) => f.kind === "unscannable"));
  assert.deepEqual(await walkMessage(Buffer.alloc(0), LIMITS), []);
});

void test("the check: strictest action over the recipients, mailbox before domain, reasons in the reply", async () => {
  const opts: AttachmentOptions = {
    ...LIMITS,
    actions: { "attachment.executable": "reject", "attachment.encrypted_archive": "quarantine" },
    overrides: { "lab.example.org": { executable: "tag" }, "boss@lab.example.org": { executable: "quarantine" } },
  };
  assert.equal(strictest(opts, ["a@lab.example.org"], "executable"), "tag");
  assert.equal(strictest(opts, ["boss@LAB.example.org"], "executable"), "quarantine");
  assert.equal(strictest(opts, ["a@lab.example.org", "b@example.org"], "executable"), "reject");
  assert.equal(strictest(opts, ["a@lab.example.org"], "encrypted_archive"), "quarantine");
  const check = new AttachmentCheck(opts);
  const input = (recipients: string[]) => ({ clientIp: "127.0.0.1", helo: "h", mailFrom: "", recipients, content: mimeMessage({ attachments: [{ name: "invoice.pdf.exe", data: peFile() }] }), state: new TransactionState(), signal: new AbortController().signal });
  const refused = await check.data(input(["x@example.org"]));
  assert.deepEqual(refused.verdicts, ["attachment.executable"]);
  assert.equal(refused.actions?.["attachment.executable"], "reject");
  const r = refused.replies?.["attachment.executable"];
  assert.equal(r?.code, 550);
  assert.equal(r?.status, "5.7.1");
  assert.match(r?.lines.join(" ") ?? "", /"invoice\.pdf\.exe": executable behind a double extension \(\.pdf\.exe\) \(attachment\.executable\)/);
  assert.equal((await check.data(input(["x@lab.example.org"]))).actions?.["attachment.executable"], "tag");
  assert.equal(shownName("a\u202Eb\"c\r\n"), "a?b'c??");
});

void test("the walk in a worker thread: same findings; the deadline ends it", async () => {
  const { WalkerPool } = await import("./offload.ts");
  const pool = new WalkerPool();
  try {
    const msg = mimeMessage({ attachments: [{ name: "docs.zip", data: zip([{ name: "setup.exe", data: peFile() }]) }] });
    assert.deepEqual(await pool.walk(msg, LIMITS), await walkMessage(msg, LIMITS));
    // A big message of empty lines, aborted at once: the task fails (fail closed), the next one runs.
    const big = Buffer.concat([Buffer.from("From: a@b\r\n\r\n"), Buffer.alloc(20 * 1024 * 1024, "\r\n")]);
    const ac = new AbortController();
    const slow = pool.walk(big, LIMITS, ac.signal);
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(slow, /deadline/);
    assert.deepEqual([...new Set((await pool.walk(msg, LIMITS)).map((f) => f.kind))], ["executable"]);
  } finally {
    pool.close();
  }
});

void test("mutated zips and MIME: never a throw, always within bounds (300 random mutations, fixed seed)", async () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const inner = zip([{ name: "a.txt", data: Buffer.from("hello") }, { name: "b.exe", data: peFile() }]);
  const base = zip([{ name: "in.zip", data: inner }, { name: "doc.pdf", data: pdfFile() }]);
  const t0 = performance.now();
  for (let i = 0; i < 300; i++) {
    const z = Buffer.from(base);
    for (let k = 0; k < 1 + rand(8); k++) z[rand(z.length)] = rand(256);
    const cut = rand(4) === 0 ? z.subarray(0, rand(z.length)) : z;
    const msg = mimeMessage({ attachments: [{ name: "x.zip", data: cut }] });
    const m = Buffer.from(msg);
    if (rand(2) === 0) for (let k = 0; k < 4; k++) m[rand(m.length)] = rand(256);
    const found = await walkMessage(m, LIMITS);
    assert.ok(Array.isArray(found));
  }
  assert.ok(performance.now() - t0 < 20_000);
});

void test("single-part messages: the body is decoded from the buffer (an attachment as the whole message, a 20 MiB text)", async () => {
  const exe = Buffer.from(`From: a@b\r\nContent-Type: application/octet-stream; name="run.dat"\r\nContent-Transfer-Encoding: base64\r\n\r\n${peFile().toString("base64")}\r\n`);
  assert.deepEqual((await walkMessage(exe, LIMITS)).map((f) => f.reason), ["Windows executable by content (MZ)"]);
  const named = Buffer.from('From: a@b\r\nContent-Type: application/octet-stream; name="invoice.pdf.exe"\r\n\r\nhello\r\n');
  assert.deepEqual((await walkMessage(named, LIMITS)).map((f) => f.kind), ["executable"]);
  const t0 = performance.now();
  assert.deepEqual(await walkMessage(Buffer.concat([Buffer.from("From: a@b\r\n\r\n"), Buffer.alloc(20 * 1024 * 1024, "..\r\n")]), LIMITS), []);
  assert.ok(performance.now() - t0 < 3000);
});

void test("encrypted RAR (4 and 5) and 7z archives by their headers; plain ones pass", async () => {
  assert.deepEqual(await kinds([{ name: "a.rar", data: rar5("headers") }]), ["encrypted_archive"]);
  assert.deepEqual(await kinds([{ name: "a.rar", data: rar5("file") }]), ["encrypted_archive"]);
  assert.deepEqual(await kinds([{ name: "a.rar", data: rar5("plain") }]), []);
  assert.deepEqual(await kinds([{ name: "a.rar", data: rar4(true) }]), ["encrypted_archive"]);
  assert.deepEqual(await kinds([{ name: "a.rar", data: rar4(false) }]), []);
  assert.deepEqual(await kinds([{ name: "a.7z", data: sevenZip(true) }]), ["encrypted_archive"]);
  assert.deepEqual(await kinds([{ name: "a.7z", data: sevenZip(false) }]), []);
  // Truncated and garbled headers: no verdict, no throw.
  for (const b of [rar5("file"), rar4(true), sevenZip(true)]) {
    for (let cut = 1; cut < b.length; cut += 3) await walkMessage(mimeMessage({ attachments: [{ name: "x.bin", data: b.subarray(0, cut) }] }), LIMITS);
  }
});

test("plain text (no Content-Type, text/plain or text/html without a file name) skips the walk; anything else is walked", async () => {
  const m = (head: string): Buffer => Buffer.from(`From: a@b.test\r\n${head}Subject: s\r\n\r\nbody\r\n`);
  assert.equal(plainText(m("")), true);
  assert.equal(plainText(m("Content-Type: text/plain; charset=utf-8\r\n")), true);
  assert.equal(plainText(m("content-type: TEXT/HTML\r\n")), true);
  for (const h of [
    "Content-Type: multipart/mixed; boundary=x\r\n",
    "Content-Type: application/octet-stream\r\n",
    'Content-Type: text/plain; name="invoice.pdf.exe"\r\n',
    "Content-Type: text/plain\r\nContent-Disposition: attachment\r\n",
    "Content-Type: text/plain\r\nContent-Type: application/zip\r\n",
    "Content-Type: text/plainx\r\n",
  ]) assert.equal(plainText(m(h)), false, h);
  // The check itself: a single-part executable is still found; plain text has no verdict.
  const check = new AttachmentCheck({ maxDepth: 5, maxArchiveEntries: 100, maxUnpacked: 1 << 20, actions: {}, overrides: {} } as unknown as AttachmentOptions);
  const input = (content: Buffer) => ({ clientIp: "192.0.2.1", helo: "h", mailFrom: "a@b.test", recipients: ["u@example.test"], content, state: new TransactionState(), signal: new AbortController().signal });
  assert.deepEqual((await check.data(input(m("")))).verdicts, []);
  const exe = Buffer.concat([Buffer.from("From: a@b.test\r\nContent-Type: application/octet-stream; name=\"x.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"), Buffer.from(peFile().toString("base64") + "\r\n")]);
  assert.deepEqual((await check.data(input(exe))).verdicts, ["attachment.executable"]);
});
