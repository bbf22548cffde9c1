/**
 * The `wardmail` command: help and usage errors with their exit codes,
 * `config check` with its `FILE:LINE: KEY: ...` errors, `serve` on a
 * one-line config (every other key keeps its default), `serve` refusing an
 * invalid config or a port in use, and the `queue` commands against a
 * running server whose messages stay in the queue (an alias to a remote
 * address, expanded to that address before queueing; the test's DNS server
 * is a closed loopback port, so its MX lookup fails and it stays deferred).
 *
 * Exit codes (docs/cli.md): 0 ok, 1 answer is no, 2 usage, 3 cannot start/read.
 *
 * Two ways to run a command: `wardmail(args)` runs the real binary
 * (`node bin/wardmail.ts ...`, its exit status), `cli(args)` calls `main()`
 * in this process (what bin/wardmail.ts calls; its result is the exit code,
 * a throw becomes 70 as in the binary). Each `node` start costs ~0.5 s of CPU
 * (type stripping of the whole program), so most cases run in-process, and
 * every exit code is also checked through the binary (0: --help, queue list,
 * queue hold; 1: config check, queue show of a bad id; 2: serve --bogus;
 * 3: serve). `serve` always runs as a real process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { freePort } from "./peers/ports.ts";
import { RawSmtpClient, sendOneMessage } from "./peers/smtp-client.ts";
import { QueueAdmin, type QueueEntry } from "../src/queue/index.ts";
import { main } from "../src/cli/main.ts";

// ---------------------------------------------------------------- helpers

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `wardmail <args>` in dir; SIGKILLs it (its own PID) after timeoutMs. */
function wardmail(args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
    c.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `wardmail <args>` in this process through main(); a throw is exit 70, as in bin/wardmail.ts. */
async function cli(args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  let code: number;
  try {
    code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  } catch (err) {
    code = 70;
    stderr += `wardmail: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`;
  }
  return { code, stdout, stderr };
}

interface Served {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const served: Served[] = [];

/**
 * Starts `wardmail serve --config FILE` (its own process group, so after()
 * can SIGKILL leftovers with their workers). Resolves once it printed
 * "wardmail: ready" or exited, whichever comes first.
 */
async function serve(configPath: string): Promise<Served & { ready: boolean; code: number | null }> {
  const child = spawn(process.execPath, [BIN, "serve", "--config", configPath], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const s: Served = { child, output: () => out, exited };
  served.push(s);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (out.includes("wardmail: ready")) return { ...s, ready: true, code: null };
    if (child.exitCode !== null) return { ...s, ready: false, code: await exited };
    await sleep(25);
  }
  throw new Error(`wardmail serve neither ready nor exited in 20 s:\n${out}`);
}

async function stopServed(s: Served): Promise<number | null> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return s.child.exitCode;
  s.child.kill("SIGTERM");
  return s.exited;
}

let dir = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-cli-"));
});

after(async () => {
  for (const s of served) {
    const pid = s.child.pid;
    if (pid !== undefined && s.child.exitCode === null && s.child.signalCode === null) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        /* gone */
      }
      await s.exited;
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

// ---------------------------------------------------------------- help and usage

describe("help and usage errors", () => {
  test("--help on every command: exit 0, its usage on stdout, nothing on stderr", async () => {
    const helps: [string[], RegExp][] = [
      [["--help"], /^Usage: wardmail <command>/],
      [["serve", "--help"], /^Usage: wardmail serve /],
      [["config", "--help"], /^Usage: wardmail config check FILE/],
      [["config", "check", "--help"], /^Usage: wardmail config check FILE/],
      [["queue", "--help"], /^Usage: wardmail queue <action>/],
      [["audit", "--help"], /^Usage: wardmail audit server HOST\[:PORT\]/],
      [["audit", "server", "--help"], /^Usage: wardmail audit server HOST\[:PORT\]/],
      [["send", "--help"], /^Usage: wardmail send --server HOST:PORT/],
    ];
    const runs = await Promise.all(helps.map(([args]) => cli(args)));
    const binary = await wardmail(["--help"]);
    assert.deepEqual(binary, runs[0], "the binary prints what main() prints");
    for (const [i, [args, usage]] of helps.entries()) {
      const r = runs[i] as Run;
      const what = `wardmail ${args.join(" ")}`;
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.match(r.stdout, usage, what);
      assert.match(r.stdout, /Exit codes/, what);
      assert.equal(r.stderr, "", what);
    }
  });

  test("usage errors exit 2: no arguments, unknown command, unknown option, config check without FILE", async () => {
    const [none, unknown, option, noFile] = await Promise.all([cli([]), cli(["frobnicate"]), cli(["serve", "--bogus"]), cli(["config", "check"])]);
    const binary = await wardmail(["serve", "--bogus"]);
    assert.deepEqual(binary, option, "the binary exits as main() answers");
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stdout + none.stderr, /Usage: wardmail <command>/);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    assert.equal(option.code, 2, option.stderr);
    assert.match(option.stderr, /Unknown option '--bogus'/);
    assert.doesNotMatch(option.stderr, /ready/);
    assert.equal(noFile.code, 2, noFile.stderr);
    assert.match(noFile.stderr, /expected exactly one FILE/);
  });
});

// ---------------------------------------------------------------- config check

describe("config check", () => {
  test("a valid one-line file: exit 0, 'valid'", async () => {
    const f = await file("one-line.toml", 'server.hostname = "mx.example.org"\n');
    const r = await cli(["config", "check", f]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${f}: valid\n`);
  });

  test("unknown key, wrong type, out-of-range limit: exit 1, each as FILE:LINE: KEY: ... with its line", async () => {
    const f = await file(
      "bad.toml",
      [
        "# line 1: a comment",
        "[server]",
        'hostname = "mx.example.org"',
        'hostnme = "typo.example.org"', // 4: unknown key
        'workers = "two"', // 5: wrong type
        "",
        "[limits]",
        "max_recipients = 0", // 8: out of range
        "max_line_length = 2048", // fine
      ].join("\n") + "\n",
    );
    const r = await wardmail(["config", "check", f]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /valid/);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0] ?? "", new RegExp(`^${escape(f)}:4: server\\.hostnme: unknown key; did you mean "hostname"\\?$`));
    assert.match(lines[1] ?? "", new RegExp(`^${escape(f)}:5: server\\.workers: expected an integer from 0 to 64, got "two"$`));
    assert.match(lines[2] ?? "", new RegExp(`^${escape(f)}:8: limits\\.max_recipients: expected an integer from 1 to 10000, got 0$`));
  });

  test("TOML syntax error: exit 1, reported with its line", async () => {
    const f = await file("syntax.toml", '[server]\nhostname = "mx.example.org"\nworkers = = 3\n');
    const r = await cli(["config", "check", f]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^${escape(f)}:3: TOML syntax error`, "m"));
  });

  test("a missing file: exit 2, line 0 and why", async () => {
    const f = join(dir, "does-not-exist.toml");
    const r = await cli(["config", "check", f]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^${escape(f)}:0: cannot read the config file`, "m"));
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------- serve

describe("serve", () => {
  let ports: { smtp: number; submission: number; submissions: number };
  let oneLine = "";
  let first: Served | undefined;

  before(async () => {
    ports = { smtp: await freePort(), submission: await freePort(), submissions: await freePort() };
    // Only the data directory and the three listeners: the submission roles
    // default to the fixed ports 2587 and 2465, which another test (or a
    // running Wardmail) may hold, so every listener gets a free port here.
    // Everything else (hostname, domains, mailboxes, TLS) keeps its default.
    oneLine = await file(
      "serve-one-line.toml",
      [
        `server.data_dir = ${JSON.stringify(join(dir, "serve-data"))}`,
        `smtp.listen = ["127.0.0.1:${ports.smtp}"]`,
        `submission.listen = ["127.0.0.1:${ports.submission}"]`,
        `submissions.listen = ["127.0.0.1:${ports.submissions}"]`,
      ].join("\n") + "\n",
    );
  });

  after(async () => {
    if (first) await stopServed(first);
  });

  test("a config of defaults plus listeners: EHLO answered as localhost, postmaster@example.test gets mail", async () => {
    const s = await serve(oneLine);
    first = s;
    assert.ok(s.ready, `serve exited with ${s.code}:\n${s.output()}`);
    assert.match(s.output(), new RegExp(`listening smtp +127\\.0\\.0\\.1:${ports.smtp} \\(STARTTLS\\)`));
    assert.match(s.output(), /local domains localhost, example\.test/);

    const c = await RawSmtpClient.connect(ports.smtp);
    try {
      const greeting = await c.readReply();
      assert.equal(greeting.code, 220);
      assert.match(greeting.lines[0] ?? "", /^localhost /);
      const ehlo = await c.command("EHLO client.test");
      assert.equal(ehlo.code, 250);
      assert.match(ehlo.lines[0] ?? "", /^localhost\b/);
      assert.ok(ehlo.lines.includes("STARTTLS"), ehlo.raw);
      assert.equal((await c.command("MAIL FROM:<a@sender.test>")).code, 250);
      assert.equal((await c.command("RCPT TO:<postmaster@example.test>")).code, 250);
      assert.equal((await c.command("DATA")).code, 354);
      const done = await c.sendData("From: a@sender.test\r\nSubject: defaults\r\n\r\ndefault mailbox\r\n");
      assert.equal(done.code, 250, done.raw);
      assert.match(done.lines[0] ?? "", /queued as \S+/);
    } finally {
      await c.quit();
    }
    const maildir = join(dir, "serve-data", "mail", "example.test", "postmaster", "new");
    let files: string[] = [];
    for (let i = 0; i < 100 && files.length === 0; i++) {
      files = await readdir(maildir).catch(() => []);
      if (files.length === 0) await sleep(50);
    }
    assert.equal(files.length, 1, `nothing in ${maildir}:\n${s.output().slice(-3000)}`);
  });

  test("a second serve on the same ports: exit 3, 'address already in use'; the first keeps serving", async () => {
    assert.ok(first, "first server not started");
    const s = await serve(oneLine);
    assert.equal(s.ready, false, s.output());
    assert.equal(s.code, 3, s.output());
    assert.match(s.output(), new RegExp(`cannot start: cannot listen on 127\\.0\\.0\\.1:${ports.smtp}: address already in use`));
    const c = await RawSmtpClient.connect(ports.smtp);
    try {
      assert.equal((await c.readReply()).code, 220);
    } finally {
      await c.quit();
    }
  });

  test("a port held by a plain TCP server: exit 3, 'address already in use'", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once("error", reject);
      holder.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resolve());
    });
    try {
      const held = (holder.address() as net.AddressInfo).port;
      const f = await file(
        "serve-held.toml",
        [
          `server.data_dir = ${JSON.stringify(join(dir, "held-data"))}`,
          `smtp.listen = ["127.0.0.1:${await freePort()}"]`,
          `submission.listen = ["127.0.0.1:${held}"]`,
          `submissions.listen = ["127.0.0.1:${await freePort()}"]`,
        ].join("\n") + "\n",
      );
      const s = await serve(f);
      assert.equal(s.ready, false, s.output());
      assert.equal(s.code, 3, s.output());
      assert.match(s.output(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${held}: address already in use`));
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  test("an invalid config: exit 3, the error on stderr, nothing started", async () => {
    const f = await file("serve-bad.toml", `server.data_dir = ${JSON.stringify(join(dir, "bad-data"))}\nlimits.max_recipients = 0\n`);
    const r = await wardmail(["serve", "--config", f]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^${escape(f)}:2: limits\\.max_recipients: expected an integer from 1 to 10000, got 0$`, "m"));
    assert.doesNotMatch(r.stderr, /ready/);
    assert.deepEqual(await readdir(join(dir, "bad-data")).catch(() => "absent"), "absent");
  });
});

// ---------------------------------------------------------------- queue

interface ListEntry {
  id: string;
  state: string;
  size: number;
  from: string;
  to: string[];
  nextAttemptAt: string;
  attempts: number;
  lastError?: string;
}

interface ShowEntry extends ListEntry {
  recipients: { address: string; state: string; lastError?: string }[];
  headers: string;
  content?: string;
}

describe("queue commands against a running server", () => {
  let w: Wardmail | undefined;
  const ids: string[] = []; // [to fwd, to fwd + user, to fwd]
  const TOKENS = ["body-token-a1f3", "body-token-b7c2", "body-token-c9d4"];

  function server(): Wardmail {
    assert.ok(w, "server not started");
    return w;
  }
  /** `wardmail queue ... --config FILE`, in this process; `qBin` runs the binary. */
  const q = (...args: string[]): Promise<Run> => cli(["queue", ...args, "--config", server().configPath]);
  const qBin = (...args: string[]): Promise<Run> => wardmail(["queue", ...args, "--config", server().configPath]);
  /**
   * The queue as the spool holds it, read in this process (QueueAdmin, as the
   * CLI does, safe while the server runs): an independent check of what the
   * commands did, and cheap enough to poll (each `wardmail` run costs ~0.5 s of CPU).
   */
  function entries(): QueueEntry[] {
    const admin = QueueAdmin.open(server().dataDir);
    try {
      return admin.list();
    } finally {
      admin.close();
    }
  }
  const entry = (id: string): QueueEntry | undefined => entries().find((e) => e.id === id);
  /** Polls until pred holds for id's entry (or the time is up); returns the last entry seen. */
  async function waitEntry(id: string, pred: (e: QueueEntry | undefined) => boolean, timeoutMs = 8000): Promise<QueueEntry | undefined> {
    const deadline = Date.now() + timeoutMs;
    let e = entry(id);
    while (!pred(e) && Date.now() < deadline) {
      await sleep(50);
      e = entry(id);
    }
    return e;
  }

  before(async () => {
    w = await startWardmail({ workers: 1, extra: '[local.aliases]\n"fwd@example.test" = ["someone@remote.test"]\n' });
    const recipients = [["fwd@example.test"], ["fwd@example.test", "user@example.test"], ["fwd@example.test"]];
    for (const [i, to] of recipients.entries()) {
      const replies = await sendOneMessage({ port: w.smtpPort, from: "a@sender.test", to, body: `Subject: queued ${i}\r\n\r\n${TOKENS[i]}\r\n` });
      const id = replies.map((r) => /queued as (\S+)/.exec(r.lines[0] ?? "")?.[1]).find((x) => x !== undefined);
      assert.ok(id, JSON.stringify(replies));
      ids.push(id);
    }
    // Each is tried once and deferred (backoff 60 s): they stay in the queue.
    for (const id of ids) {
      const e = await waitEntry(id, (x) => x?.state === "deferred");
      assert.equal(e?.state, "deferred", `${id}: ${JSON.stringify(e)}\n${w.output().slice(-3000)}`);
    }
  });

  after(async () => {
    if (!w) return;
    await w.stop();
    await w.cleanup();
  });

  test("list --json and list: every message with id, state, sender, recipients and the last error", async () => {
    const [json, text] = await Promise.all([qBin("list", "--json"), q("list")]);
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as ListEntry[];
    assert.deepEqual(list.map((e) => e.id).sort(), [...ids].sort());
    for (const [i, id] of ids.entries()) {
      const e = list.find((x) => x.id === id);
      assert.ok(e);
      assert.ok(["deferred", "queued"].includes(e.state), e.state);
      assert.equal(e.from, "a@sender.test");
      assert.deepEqual(e.to, i === 1 ? ["someone@remote.test", "user@example.test"] : ["someone@remote.test"]);
      assert.match(e.lastError ?? "", /^MX lookup for remote\.test failed/);
      assert.ok(e.size > 0 && e.attempts >= 1, JSON.stringify(e));
    }

    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ID +STATE +SIZE +FROM -> TO$/m);
    for (const id of ids) assert.match(text.stdout, new RegExp(`^${id} +(deferred|queued) +\\d+ +<a@sender\\.test> -> <someone@remote\\.test>`, "m"));
    assert.match(text.stdout, /last error: MX lookup for remote\.test failed/);
    assert.match(text.stdout, /^3 messages$/m);
  });

  test("show ID and show ID --json: envelope, per-recipient state, headers; the body only with --content", async () => {
    const id = ids[1] as string;
    const [text, json, content] = await Promise.all([q("show", id), q("show", id, "--json"), q("show", id, "--json", "--content")]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^id: +${id}$`, "m"));
    assert.match(text.stdout, /^from: +<a@sender\.test>$/m);
    assert.match(text.stdout, /^rcpt: +<someone@remote\.test> deferred \(MX lookup for remote\.test failed[^)]*\)$/m);
    assert.match(text.stdout, /^rcpt: +<user@example\.test> delivered$/m);
    // Each recipient's stored route, on the line after it.
    assert.match(text.stdout, /^rcpt: +<someone@remote\.test> [^\n]*\n {2}route: +remote: remote\.test$/m);
    assert.match(text.stdout, /^rcpt: +<user@example\.test> delivered\n {2}route: +local: <user@example\.test> Maildir \S+$/m);
    assert.match(text.stdout, /^Subject: queued 1\r?$/m);
    assert.ok(!text.stdout.includes(TOKENS[1] as string), "the body is shown without --content");

    assert.equal(json.code, 0, json.stderr);
    const m = JSON.parse(json.stdout) as ShowEntry;
    assert.equal(m.id, id);
    assert.equal(m.from, "a@sender.test");
    assert.deepEqual(
      m.recipients.map((r) => [r.address, r.state]),
      [
        ["someone@remote.test", "deferred"],
        ["user@example.test", "delivered"],
      ],
    );
    assert.match(m.headers, /^Received: from /);
    assert.match(m.headers, /\r\nSubject: queued 1\r\n/);
    assert.equal(m.content, undefined);
    assert.ok(!json.stdout.includes(TOKENS[1] as string));

    assert.equal(content.code, 0, content.stderr);
    const c = JSON.parse(content.stdout) as ShowEntry;
    assert.ok(c.content?.includes(`\r\n\r\n${TOKENS[1]}\r\n`), c.content);
  });

  test("hold: state held; release: not held, and the worker tries it again", async () => {
    const id = ids[0] as string;
    const before = entry(id);
    assert.ok(before);
    const h = await qBin("hold", id);
    assert.equal(h.code, 0, h.stderr);
    assert.equal(h.stdout, `${id}: held\n`);
    assert.equal(entry(id)?.state, "held");

    const r = await q("release", id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${id}: released\n`);
    assert.notEqual(entry(id)?.state, "held");
    // Released means due now: the worker (polling every second) tries it again and defers it again.
    const retried = await waitEntry(id, (e) => (e?.attempts ?? 0) > before.attempts && e?.state === "deferred");
    assert.ok(retried && retried.attempts > before.attempts, `not tried again after release: ${JSON.stringify(retried)}`);
  });

  test("retry: due now, the worker tries it again", async () => {
    const id = ids[2] as string;
    const before = entry(id);
    assert.ok(before);
    assert.ok(before.nextAttemptAt > Date.now() + 10_000, `not deferred into the future: ${before.nextAttemptAt}`);
    const r = await q("retry", id, "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { id, action: "retry", ok: true });
    const tried = await waitEntry(id, (x) => (x?.attempts ?? 0) > before.attempts || (x?.nextAttemptAt ?? Infinity) <= Date.now());
    assert.ok(tried, "gone from the queue");
    assert.ok(tried.attempts > before.attempts || tried.nextAttemptAt <= Date.now(), `not due after retry: ${JSON.stringify(tried)}`);
    const again = await waitEntry(id, (x) => (x?.attempts ?? 0) > before.attempts);
    assert.ok(again && again.attempts > before.attempts, `not tried again after retry: ${JSON.stringify(again)}`);
  });

  test("retry on a held message is refused (exit 1) and leaves it held", async () => {
    const id = ids[1] as string;
    assert.equal((await q("hold", id)).code, 0);
    const r = await q("retry", id);
    assert.equal(r.code, 1, `${r.code} ${r.stderr}`);
    assert.match(r.stderr, /state that allows retry/);
    assert.equal(entry(id)?.state, "held");
    const admin = QueueAdmin.open(server().dataDir);
    try {
      assert.ok(admin.release(id));
    } finally {
      admin.close();
    }
  });

  test("delete: gone from the queue, then unknown (exit 1)", async () => {
    const id = ids[2] as string;
    const d = await q("delete", id);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout, `${id}: deleted\n`);
    const left = entries().map((e) => e.id);
    assert.ok(!left.includes(id), left.join(", "));
    assert.equal(left.length, 2);
    const again = await q("show", id);
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(again.stderr, /no such message/);
  });

  test("an unknown id: exit 1 (show, hold, delete); text that is not an id: exit 1, not an internal error", async () => {
    const unknown = "0000000000000000zz"; // the shape of a queue id, never issued
    const [show, hold, del, bad] = await Promise.all([q("show", unknown), q("hold", unknown), q("delete", unknown), qBin("show", "../not-an-id")]);
    for (const r of [show, hold, del]) {
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /no such message/);
    }
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.doesNotMatch(bad.stderr, /internal error/);
    assert.equal(entries().length, 2, "nothing changed");
  });

  test("usage errors exit 2: show without ID, no action", async () => {
    const [noId, noAction] = await Promise.all([q("show"), q()]);
    assert.equal(noId.code, 2, noId.stdout + noId.stderr);
    assert.match(noId.stderr, /wrong arguments/);
    assert.equal(noAction.code, 2, noAction.stdout + noAction.stderr);
    assert.match(noAction.stderr, /missing action/);
  });
});

describe("queue on a fresh data directory", () => {
  test("list with no spool yet: 'queue is empty' (and [] with --json), exit 0", async () => {
    const f = await file("fresh.toml", `server.data_dir = ${JSON.stringify(join(dir, "fresh-data"))}\n`);
    const [text, json] = await Promise.all([cli(["queue", "list", "--config", f]), cli(["queue", "list", "--json", "--config", f])]);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, "queue is empty\n");
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), []);
  });
});
