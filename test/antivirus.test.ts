/**
 * ClamAV and the attachment policy end to end: a real clamd (Debian
 * clamav-daemon) on a loopback port with a one-line EICAR signature
 * database, Wardmail pointed at it with `[antivirus] clamd`, and swaks as
 * the client, on the MX port and on submission (authenticated, STARTTLS).
 *
 * - EICAR in the body, as a base64 attachment, in a zip and in a zip inside
 *   a zip (written by python3's zipfile): 554 5.7.1 naming the signature.
 * - Executables (by name, double extension, right-to-left override, by
 *   content, in a zip, in a nested zip), a disk image, a macro-enabled
 *   Office file and an encrypted zip (Info-ZIP `zip -e`; encrypted archives
 *   set to reject): 550 5.7.1 naming the part and the reason, in the log too.
 * - A clean message, a PDF and a PNG: accepted and delivered.
 * - A mailbox override (executables quarantined for other@): Junk folder.
 * - clamd stopped: 451 4.7.1.
 * Nothing refused reaches a Maildir. Samples are built at test time.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { isoImage, mimeMessage, ooxml, pdfFile, peFile, pngFile, elfFile, zip } from "./helpers/samples.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { clamdMissing, eicar, startClamd, type Clamd } from "./peers/clamd.ts";
import { logLines, swaks, waitForLog } from "./peers/submission.ts";

const SKIP = peerSkip(
  clamdMissing(),
  binaryMissing("swaks", ["--version"], "swaks"),
  binaryMissing("python3", ["--version"], "python3", { exitZero: true }),
  binaryMissing("zip", ["-v"], "zip", { exitZero: true }),
);
const PASSWORD = "antivirus-password-1";

let clamd: Clamd | undefined;
let w: Wardmail | undefined;
let dir = "";
let n = 0;
/** Subject tokens of the messages that were accepted, and of those refused, per mailbox. */
const accepted = new Map<string, string[]>();
const refused: string[] = [];

function server(): Wardmail {
  assert.ok(w);
  return w;
}

interface EndReply {
  code: number;
  line: string;
}

/** The reply to the end of DATA in a swaks transcript (the first reply after the 354). */
function endOfData(out: string): EndReply | undefined {
  const lines = out.split(/\r?\n/);
  const start = lines.findIndex((l) => /^<[-~*]{1,2} +354 /.test(l));
  for (let j = start + 1; start >= 0 && j < lines.length; j++) {
    const m = /^<[-~*]{1,2} +(\d{3}) (.*)$/.exec(lines[j] ?? "");
    if (m) return { code: Number(m[1]), line: `${m[1]} ${m[2]}` };
  }
  return undefined;
}

interface Send {
  /** "mx" (port 25 role, unauthenticated) or "submission" (AUTH PLAIN after STARTTLS). */
  readonly via?: "mx" | "submission";
  readonly to?: string;
  /** Files to attach (written under their names into a fresh directory). */
  readonly files?: readonly { name: string; data: Buffer }[];
  readonly body?: string;
  /** A whole message instead of swaks' own (--data). */
  readonly data?: (token: string) => Buffer;
}

async function send(s: Send): Promise<{ reply: EndReply; token: string; out: string }> {
  const token = `av-${process.pid}-${++n}`;
  const w = server();
  const to = s.to ?? "user@example.test";
  const via = s.via ?? "mx";
  const args = via === "mx"
    ? ["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@example.net"]
    : ["--server", `127.0.0.1:${w.submissionPort}`, "--tls", "--auth", "PLAIN", "--auth-user", "user@example.test", "--auth-password", PASSWORD, "--from", "user@example.test"];
  args.push("--to", to, "--suppress-data");
  const work = await mkdtemp(join(dir, "send-"));
  if (s.data) {
    const file = join(work, "message.eml");
    await writeFile(file, s.data(token));
    args.push("--data", `@${file}`);
  } else {
    args.push("--header", `Subject: ${token}`, "--body", s.body ?? `Hello ${token}`);
    for (const f of s.files ?? []) {
      const file = join(work, f.name);
      await writeFile(file, f.data);
      args.push("--attach-type", "application/octet-stream", "--attach", `@${file}`);
    }
  }
  const r = await swaks(args);
  const reply = endOfData(r.out);
  assert.ok(reply, r.out);
  if (reply.code === 250) accepted.set(to, [...(accepted.get(to) ?? []), token]);
  else refused.push(token);
  return { reply, token, out: r.out };
}

/** python3's zipfile (an independent zip writer): entries given as name → bytes. */
function pyZip(path: string, entries: Record<string, Buffer>): void {
  const py = "import sys, zipfile, base64, json\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nfor k, v in json.loads(sys.stdin.read()).items(): z.writestr(k, base64.b64decode(v))\nz.close()\n";
  const input = JSON.stringify(Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, v.toString("base64")])));
  const r = spawnSync("python3", ["-c", py, path], { input });
  assert.equal(r.status, 0, String(r.stderr));
}

describe("antivirus and attachment policy with a real clamd", { skip: SKIP }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "wardmail-av-"));
    clamd = await startClamd();
    w = await startWardmail({
      extra: [
        "[antivirus]",
        `clamd = "127.0.0.1:${clamd.port}"`,
        "timeout = 5",
        "[checks.actions]",
        '"attachment.encrypted_archive" = "reject"',
        '[attachments.overrides."other@example.test"]',
        'executable = "quarantine"',
        "",
      ].join("\n"),
    });
    const add = await w.cli(["user", "add", "user@example.test", "--password-stdin", "--config", w.configPath], `${PASSWORD}\n`);
    assert.equal(add.code, 0, add.stderr);
  });

  after(async () => {
    await w?.stop();
    await w?.cleanup();
    await clamd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("startup says antivirus is on and where", () => {
    const on = logLines(server().output(), `antivirus on: clamd at 127.0.0.1:${clamd?.port}`);
    assert.ok(on.length > 0, server().output());
    assert.equal(on[0]?.transport, "tcp");
  });

  test("EICAR in the body, as a base64 attachment, in a zip and in a zip in a zip: 554 5.7.1 naming the signature", async () => {
    const z1 = join(dir, "eicar.zip");
    const z2 = join(dir, "nested.zip");
    pyZip(z1, { "eicar.txt": eicar() });
    pyZip(z2, { "inner.zip": await readFile(z1) });
    const cases: Send[] = [
      { body: `Look: ${eicar().toString("latin1")}` },
      { files: [{ name: "test.txt", data: eicar() }] },
      { files: [{ name: "eicar.zip", data: await readFile(z1) }] },
      { files: [{ name: "nested.zip", data: await readFile(z2) }] },
      { via: "submission", files: [{ name: "test.txt", data: eicar() }] },
    ];
    for (const c of cases) {
      const { reply, out } = await send(c);
      assert.equal(reply.code, 554, out);
      assert.match(reply.line, /^554 5\.7\.1 Message refused: virus found \(Local\.EICAR\.Ndb/, out);
    }
    const line = await waitForLog(() => server().output(), "virus found", (l) => String(l.signature).startsWith("Local.EICAR.Ndb"));
    assert.ok(line, "virus found log line");
  });

  test("clean mail, a PDF and a PNG are accepted, on MX and on submission", async () => {
    for (const c of [
      {},
      { files: [{ name: "report.pdf", data: pdfFile() }, { name: "photo.png", data: pngFile() }] },
      { via: "submission" as const, to: "other@example.test", files: [{ name: "letter.docx", data: ooxml(false) }] },
    ]) {
      const { reply, out } = await send(c);
      assert.equal(reply.code, 250, out);
    }
  });

  test("executables, a disk image, a macro document and an encrypted zip: 550 5.7.1 naming the part and the reason", async () => {
    const enc = join(dir, "enc");
    await rm(enc, { recursive: true, force: true });
    spawnSync("mkdir", [enc]);
    await writeFile(join(enc, "payroll.txt"), "numbers");
    assert.equal(spawnSync("zip", ["-q", "-e", "-P", "s3cret", "payroll.zip", "payroll.txt"], { cwd: enc }).status, 0);
    const nestedExe = join(dir, "tools.zip");
    pyZip(nestedExe, { "docs/inner.zip": zip([{ name: "setup.exe", data: peFile() }]) });
    const cases: { send: Send; re: RegExp }[] = [
      { send: { files: [{ name: "invoice.pdf.exe", data: peFile() }] }, re: /"invoice\.pdf\.exe": executable behind a double extension \(\.pdf\.exe\) \(attachment\.executable\)/ },
      { send: { data: (t) => mimeMessage({ subject: t, attachments: [{ name: "invoice\u202Efdp.txt", data: Buffer.from("hello") }] }) }, re: /bidirectional control character \(U\+202E\) \(attachment\.executable\)/ },
      { send: { files: [{ name: "holiday.jpg", data: elfFile() }] }, re: /"holiday\.jpg": ELF executable by content/ },
      { send: { files: [{ name: "report.pdf", data: peFile() }] }, re: /"report\.pdf": Windows executable by content \(MZ\)/ },
      { send: { files: [{ name: "tools.zip", data: await readFile(nestedExe) }] }, re: /"tools\.zip\/docs\/inner\.zip\/setup\.exe": executable by name \(\.exe\)/ },
      // Over 128 KiB: walked in a worker thread.
      { send: { files: [{ name: "manual.pdf", data: Buffer.concat([pdfFile(), Buffer.alloc(400 * 1024, 0x20)]) }, { name: "extras.zip", data: zip([{ name: "patch.scr", data: peFile() }]) }] }, re: /"extras\.zip\/patch\.scr": executable by name \(\.scr\)/ },
      { send: { files: [{ name: "scan.zip", data: zip([{ name: "run.js", data: Buffer.from("WScript.Echo(1)") }]) }] }, re: /"scan\.zip\/run\.js": executable by name \(\.js\)/ },
      { send: { files: [{ name: "backup.dat", data: isoImage() }] }, re: /ISO 9660\/UDF disk image by content \(attachment\.disk_image\)/ },
      { send: { files: [{ name: "update.vhd", data: Buffer.from("x") }] }, re: /disk image by name \(\.vhd\)/ },
      { send: { files: [{ name: "budget.xlsx", data: ooxml(true) }] }, re: /"budget\.xlsx": Office document with a VBA macro project \(word\/vbaProject\.bin\) \(attachment\.macro\)/ },
      { send: { via: "submission", files: [{ name: "payroll.zip", data: await readFile(join(enc, "payroll.zip")) }] }, re: /"payroll\.zip": encrypted archive entry \(payroll\.txt\) \(attachment\.encrypted_archive\)/ },
    ];
    for (const c of cases) {
      const { reply, out } = await send(c.send);
      assert.equal(reply.code, 550, out);
      assert.match(reply.line, /^550 5\.7\.1 Attachment refused: /);
      assert.match(reply.line, c.re);
    }
    const line = await waitForLog(() => server().output(), "attachment policy", (l) => JSON.stringify(l.findings).includes("payroll.zip"));
    assert.ok(line, "attachment policy log line");
  });

  test("a mailbox override: executables for other@ are quarantined to Junk", async () => {
    const { reply, token, out } = await send({ to: "other@example.test", files: [{ name: "tool.exe", data: peFile() }] });
    assert.equal(reply.code, 250, out);
    accepted.set("other@example.test", (accepted.get("other@example.test") ?? []).filter((t) => t !== token));
    const deadline = Date.now() + 10_000;
    let junk: string[] = [];
    while (Date.now() < deadline && junk.length === 0) {
      junk = await server().maildir("other@example.test", ".Junk").catch(() => []);
      if (junk.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(junk.length, 1);
    const text = await readFile(junk[0] as string, "latin1");
    assert.ok(text.includes(token));
    assert.match(text, /^X-Wardmail-Verdict: attachment\.executable \(quarantine\)\r?$/m);
  });

  test("clamd stopped: 451 4.7.1, nothing stored", async () => {
    await clamd?.stop();
    const { reply, out } = await send({ body: "clean but unscanned" });
    assert.equal(reply.code, 451, out);
    assert.match(reply.line, /^451 4\.7\.1 Virus scanner unavailable/);
    assert.ok(await waitForLog(() => server().output(), "virus scan failed", () => true), "virus scan failed log line");
  });

  test("the Maildirs hold exactly the accepted messages", async () => {
    for (const [to, tokens] of accepted) {
      const deadline = Date.now() + 10_000;
      let texts: string[] = [];
      while (Date.now() < deadline) {
        texts = await Promise.all((await server().maildir(to)).map(async (f) => readFile(f, "latin1")));
        if (texts.length >= tokens.length) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(texts.length, tokens.length, `${to}: ${texts.length} messages, expected ${tokens.length}`);
      for (const t of tokens) assert.ok(texts.some((x) => x.includes(t)), `${t} missing for ${to}`);
      for (const t of refused) assert.ok(!texts.some((x) => x.includes(`${t}\r\n`) || x.includes(`${t} `)), `refused ${t} stored for ${to}`);
    }
    assert.ok(refused.length >= 16);
  });
});
