/**
 * SMTP smuggling over real sockets: every fake end-of-data sequence of the
 * external table (../shared/conformance/smuggling/eod-payloads.json, used as
 * is) sent to a running Wardmail from a raw node:net socket, under both
 * bare-line-ending policies ("reject", the default, and "normalize"), with
 * the payload in the same write as everything else and in a write of its
 * own. The protocol core gets the same table without sockets in
 * src/protocol/smuggling.test.ts.
 *
 * Each attempt pipelines EHLO, MAIL, RCPT, DATA, a first message, the payload,
 * a smuggled second transaction (lower-case verbs) to other@example.test, a
 * real CRLF.CRLF and QUIT, then reads every reply until the server closes.
 * Whatever the server does, it must never open a second transaction, never
 * store more than one message per attempt, never deliver to
 * other@example.test, and never store a bare CR, bare LF or NUL.
 *
 * Two servers (one per policy), started together in before(), with
 * protocol.strict_pipelining off so the payloads reach the DATA parser; a
 * third with the defaults shows that such a client is refused before DATA.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { conformanceFile } from "./helpers/conformance.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const TABLE_FILE = conformanceFile("smuggling", "eod-payloads.json");
const table = JSON.parse(readFileSync(TABLE_FILE, "utf8")) as {
  payloads: { id: string; hex: string; description: string }[];
  extra_checks: { id: string }[];
};

const POLICIES = ["reject", "normalize"] as const;
type Policy = (typeof POLICIES)[number];

const MAILBOXES = ["user@example.test", "other@example.test", "pipe@example.test", "postmaster@example.test"];

const servers = new Map<Policy, Wardmail>();
/** Messages each server acknowledged with "250 2.0.0 Ok: queued" for user@example.test. */
const acceptedForUser = new Map<Policy, number>(POLICIES.map((p) => [p, 0]));

function server(policy: Policy): Wardmail {
  const s = servers.get(policy);
  assert.ok(s, `server (${policy}) not started`);
  return s;
}

before(async () => {
  const results = await Promise.allSettled(
    POLICIES.map((p) =>
      // Strict pipelining off: each attempt fires its whole dialogue at once, and
      // the point here is what the DATA parser does with it (with the default
      // on, such a client is refused before DATA: the last test below).
      startWardmail({
        mailboxes: MAILBOXES,
        workers: 1,
        extra: `[protocol]\nstrict_pipelining = false\n${p === "normalize" ? 'bare_line_endings = "normalize"\n' : ""}`,
      }),
    ),
  );
  results.forEach((r, i) => {
    if (r.status === "fulfilled") servers.set(POLICIES[i] as Policy, r.value);
  });
  for (const r of results) if (r.status === "rejected") throw r.reason;
});

after(async () => {
  for (const s of servers.values()) {
    await s.stop();
    await s.cleanup();
  }
});

// ---------------------------------------------------------------- the raw client

const PREFIX = Buffer.from("EHLO x\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nSubject: first\r\n\r\nhello", "latin1");
const SUFFIX = Buffer.from(
  "mail FROM:<evil@forged.test>\r\nrcpt TO:<other@example.test>\r\ndata\r\nSubject: smuggled\r\n\r\nevil\r\n\r\n.\r\nQUIT\r\n",
  "latin1",
);

interface Exchange {
  /** Everything the server sent, greeting first. */
  output: string;
  /** Reply lines without CRLF. */
  lines: string[];
}

/**
 * Connects, reads the greeting, writes the given chunks (pausing between
 * them), and collects everything the server sends until it closes.
 */
function exchange(port: number, writes: Buffer[], pauseMs = 40, timeoutMs = 8000): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let out = Buffer.alloc(0);
    let started = false;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const output = out.toString("latin1");
      if (err) reject(new Error(`${err.message}; got so far: ${JSON.stringify(output)}`));
      else resolve({ output, lines: output.split("\r\n").filter((l) => l !== "") });
    };
    const timer = setTimeout(() => finish(new Error(`the server did not close within ${timeoutMs} ms`)), timeoutMs);
    const writeAll = async (): Promise<void> => {
      for (let i = 0; i < writes.length; i++) {
        if (i > 0) await sleep(pauseMs);
        if (sock.destroyed || sock.writableEnded) return; // the server may have closed already
        sock.write(writes[i] as Buffer);
      }
    };
    sock.on("data", (d: Buffer) => {
      out = Buffer.concat([out, d]);
      // The whole greeting first: on the MX port it may be split (220-, a pause, 220), and a
      // client that talks before its end is refused as an early talker (pregreet test).
      if (!started && /^220 [^\r\n]*\r\n/m.test(out.toString("latin1"))) {
        started = true;
        assert.match(out.toString("latin1"), /^(220-[^\r\n]*\r\n)*220 /);
        void writeAll();
      }
    });
    // A write that races the server's close may fail (EPIPE, ECONNRESET): what was read still counts.
    sock.on("error", () => finish());
    sock.on("close", () => finish());
  });
}

/**
 * Whether the first message must be accepted: the content is "hello" + the
 * payload up to the first genuine CRLF.CRLF (or + the payload and the
 * smuggled text, all clean, when there is none). "reject" refuses a bare CR,
 * a bare LF or a NUL in it; "normalize" refuses only a NUL.
 */
function expectAccepted(payload: Buffer, policy: Policy): boolean {
  const content = Buffer.concat([Buffer.from("hello", "latin1"), payload]);
  const eod = content.indexOf("\r\n.\r\n", 0, "latin1");
  const inMessage = eod < 0 ? content : content.subarray(0, eod + 2);
  if (inMessage.includes(0)) return false;
  if (policy === "normalize") return true;
  return !/\r(?!\n)|(?<!\r)\n/.test(inMessage.toString("latin1"));
}

function count(lines: string[], re: RegExp): number {
  return lines.filter((l) => re.test(l)).length;
}

/** A stored file must be clean CRLF text without NUL, from the first header to the last byte. */
function assertClean(raw: Buffer, what: string): void {
  const text = raw.toString("latin1");
  const bad = /\r(?!\n)|(?<!\r)\n|\0/.exec(text);
  assert.equal(bad, null, `${what}: bare CR/LF or NUL at ${bad?.index}: ${JSON.stringify(text)}`);
  assert.ok(text.endsWith("\r\n"), `${what}: does not end with CRLF`);
  assert.match(text, /^Return-Path: <a@sender\.test>\r\nDelivered-To: (user|pipe)@example\.test\r\nReceived: from x \(\[127\.0\.0\.1\]\)\r\n/, what);
}

/** Waits until address has n files, then makes sure no further file shows up for a moment. */
async function expectMailCount(w: Wardmail, address: string, n: number): Promise<string[]> {
  await w.waitForMail(address, n, 10_000);
  await sleep(150);
  const files = await w.maildir(address);
  assert.equal(files.length, n, `${address}: expected ${n} message(s), found ${files.length}`);
  return files;
}

// ---------------------------------------------------------------- the table

test("the payload table is there, complete, and has the pipelining check", () => {
  assert.ok(table.payloads.length >= 16, `${table.payloads.length} payloads`);
  assert.equal(new Set(table.payloads.map((p) => p.id)).size, 16);
  for (const p of table.payloads) assert.match(p.hex, /^[0-9a-f]{2}( [0-9a-f]{2})*$/, p.id);
  assert.ok(table.extra_checks.some((c) => c.id === "pipelining-after-dot"));
});

for (const policy of POLICIES) {
  describe(`smuggling payloads, bare_line_endings = "${policy}"`, () => {
    for (const p of table.payloads) {
      const payload = Buffer.from(p.hex.replace(/ /g, ""), "hex");
      const variants = [
        { name: "one write", writes: [Buffer.concat([PREFIX, payload, SUFFIX])] },
        { name: "payload in its own write", writes: [PREFIX, payload, SUFFIX] },
      ];
      for (const v of variants) {
        test(`${p.id} (${v.name}): one transaction at most, nothing smuggled`, async () => {
          const w = server(policy);
          const before = (await w.maildir("user@example.test")).length;
          const { lines, output } = await exchange(w.smtpPort, v.writes);
          const ctx = `${p.id} ${policy} ${v.name}:\n${output}`;
          assert.match(output, /^(220-[^\r\n]*\r\n)*220 /, ctx);
          // The genuine transaction opened; the smuggled one never did.
          assert.equal(count(lines, /^250 2\.1\.0 /), 1, ctx);
          assert.equal(count(lines, /^250 2\.1\.5 /), 1, ctx);
          assert.equal(count(lines, /^354 /), 1, ctx);
          const queued = count(lines, /^250 2\.0\.0 Ok: queued as /);
          assert.ok(queued <= 1, ctx);
          assert.ok(!output.includes("other@example.test"), ctx);
          // Every attempt ends with a reply: a queued message or a refusal of the content.
          const refused = count(lines, /^550 5\.6\.0 /);
          assert.equal(queued + refused, 1, ctx);
          if (refused === 1) {
            // Refused content closes the connection: the QUIT after it is never answered.
            assert.match(lines[lines.length - 1] ?? "", /^550 5\.6\.0 .*closing connection$/, ctx);
          } else {
            assert.match(lines[lines.length - 1] ?? "", /^221 /, ctx);
          }
          assert.equal(queued, expectAccepted(payload, policy) ? 1 : 0, ctx);
          acceptedForUser.set(policy, (acceptedForUser.get(policy) ?? 0) + queued);

          const files = await w.waitForMail("user@example.test", before + queued, 10_000);
          assert.equal(files.length, before + queued, ctx);
        });
      }
    }
  });
}

// ---------------------------------------------------------------- pipelining after a real end of data

describe("pipelining after a proper CRLF.CRLF (extra check pipelining-after-dot)", () => {
  for (const policy of POLICIES) {
    test(`${policy}: two messages in one write are both accepted and both stored`, async () => {
      const w = server(policy);
      const input = Buffer.from(
        "EHLO x\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<pipe@example.test>\r\nDATA\r\nSubject: one\r\n\r\nfirst message\r\n.\r\n" +
          "MAIL FROM:<a@sender.test>\r\nRCPT TO:<pipe@example.test>\r\nDATA\r\nSubject: two\r\n\r\nsecond message\r\n.\r\nQUIT\r\n",
        "latin1",
      );
      const { lines, output } = await exchange(w.smtpPort, [input]);
      assert.equal(count(lines, /^250 2\.1\.0 /), 2, output);
      assert.equal(count(lines, /^250 2\.1\.5 /), 2, output);
      assert.equal(count(lines, /^354 /), 2, output);
      const ids = lines.filter((l) => /^250 2\.0\.0 Ok: queued as /.test(l));
      assert.equal(ids.length, 2, output);
      assert.notEqual(ids[0], ids[1]);
      assert.match(lines[lines.length - 1] ?? "", /^221 /, output);

      const files = await expectMailCount(w, "pipe@example.test", 2);
      const subjects = new Set<string>();
      for (const f of files) {
        const raw = await readFile(f);
        assertClean(raw, f);
        const text = raw.toString("latin1");
        const s = /\r\nSubject: (one|two)\r\n\r\n(first|second) message\r\n$/.exec(text);
        assert.ok(s, JSON.stringify(text));
        subjects.add(s[1] as string);
      }
      assert.deepEqual([...subjects].sort(), ["one", "two"]);
    });
  }
});

// ---------------------------------------------------------------- what was stored

describe("after every attempt", () => {
  for (const policy of POLICIES) {
    test(`${policy}: other@example.test got nothing; every stored message is one clean CRLF message`, async () => {
      const w = server(policy);
      assert.deepEqual(await w.maildir("other@example.test"), [], "a smuggled message was delivered");
      const n = acceptedForUser.get(policy) ?? 0;
      assert.ok(n > 0, "no attempt was accepted at all: the test did not exercise delivery");
      const files = await expectMailCount(w, "user@example.test", n);
      for (const f of files) {
        const raw = await readFile(f);
        assertClean(raw, f);
        const text = raw.toString("latin1");
        // Exactly one message: our Received header once, the first Subject at the top of the content.
        assert.equal(text.split("(Wardmail)").length - 1, 1, text);
        assert.match(text, /\r\nSubject: first\r\n\r\nhello/, text);
        if (policy === "reject") {
          // Only the payload that really ends the data (CRLF.CRLF, then a NUL) is accepted here.
          assert.ok(text.endsWith("\r\nSubject: first\r\n\r\nhello\r\n"), JSON.stringify(text));
        }
      }
      assert.deepEqual(await w.maildir("other@example.test"), []);
    });
  }
});

describe("with the defaults (protocol.strict_pipelining = true)", () => {
  test("an attempt that sends its whole dialogue at once is refused after EHLO: no transaction, nothing stored", async () => {
    const w = await startWardmail({ mailboxes: MAILBOXES, workers: 1 });
    try {
      const payload = Buffer.from((table.payloads[0] as { hex: string }).hex.replace(/ /g, ""), "hex");
      const { lines, output } = await exchange(w.smtpPort, [Buffer.concat([PREFIX, payload, SUFFIX])]);
      assert.equal(count(lines, /^250 2\.1\.0 /), 0, output);
      assert.equal(count(lines, /^354 /), 0, output);
      assert.match(lines[lines.length - 1] ?? "", /^554 5\.5\.0 Protocol error: improper command pipelining$/, output);
      await sleep(300);
      assert.deepEqual(await w.maildir("user@example.test"), []);
      assert.deepEqual(await w.maildir("other@example.test"), []);
    } finally {
      await w.stop();
      await w.cleanup();
    }
  });
});
