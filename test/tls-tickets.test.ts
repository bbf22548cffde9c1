/**
 * TLS session tickets and key exchange groups, seen by real clients against
 * a running Wardmail (two worker threads, as in production):
 *
 * - openssl s_client (-msg trace, -sess_out / -sess_in): the MX listener
 *   sends no NewSessionTicket on TLS 1.3 and only an empty one on TLS 1.2,
 *   so nothing can be resumed (Microsoft's SMTP client aborts STARTTLS when
 *   a TLS 1.3 server sends tickets); submission (587, STARTTLS) and
 *   submissions (465) issue tickets and every reconnection resumes, whichever
 *   worker thread accepts it (one ticket key for all threads);
 *   tls.mx_session_tickets = true turns MX tickets back on.
 * - Node's TLS client (Debian's OpenSSL 3.0 knows no ML-KEM): a client
 *   offering X25519MLKEM768 gets it, on the MX and on 465; a client that
 *   sent only an X25519 key share but supports the hybrid is asked for it
 *   (HelloRetryRequest); tls.groups from the config is what the server uses.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { exec } from "./peers/exec.ts";
import { SmtpWire } from "./peers/smtp-client.ts";
import { requireBinary } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const WORKERS = 2;
/** Reconnections with the saved session: with two threads, a per-thread key would fail half of them. */
const RESUMES = 6;

let w: Wardmail | undefined; // defaults
let on: Wardmail | undefined; // tls.mx_session_tickets = true, tls.groups without the hybrid
let dir = "";

function server(s: Wardmail | undefined): Wardmail {
  assert.ok(s, "server not started");
  return s;
}

before(async () => {
  requireBinary("openssl", ["version"]);
  dir = await mkdtemp(join(tmpdir(), "wardmail-tickets-"));
  const extra = ["[tls]", "mx_session_tickets = true", 'groups = "X25519:P-256"'].join("\n");
  const [a, b] = await Promise.allSettled([startWardmail({ workers: WORKERS }), startWardmail({ workers: WORKERS, extra })]);
  if (a.status === "fulfilled") w = a.value;
  if (b.status === "fulfilled") on = b.value;
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
});

after(async () => {
  for (const s of [w, on]) {
    if (s === undefined) continue;
    await s.stop();
    await s.cleanup();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- openssl s_client

type Version = "-tls1_3" | "-tls1_2";
type Port = "smtp" | "submission" | "submissions";

function target(s: Wardmail, port: Port): string[] {
  if (port === "submissions") return ["-connect", `127.0.0.1:${s.submissionsPort}`];
  return ["-starttls", "smtp", "-connect", `127.0.0.1:${port === "smtp" ? s.smtpPort : s.submissionPort}`];
}

/**
 * One s_client session that sends QUIT and, with -ign_eof, reads until the
 * server closes: every NewSessionTicket (TLS 1.3 sends them after the
 * handshake) has arrived by then. Returns the -msg trace.
 */
async function sClient(s: Wardmail, port: Port, version: Version, sess: { out?: string; in?: string }): Promise<string> {
  const args = ["s_client", ...target(s, port), version, "-msg", "-ign_eof", "-servername", "mx.example.test"];
  if (sess.out !== undefined) args.push("-sess_out", sess.out);
  if (sess.in !== undefined) args.push("-sess_in", sess.in);
  const r = await exec("openssl", args, { input: "QUIT\r\n", timeoutMs: 15_000 });
  assert.match(r.out, /^221 /m, `no 221 after QUIT:\n${r.out}`);
  return r.out;
}

/** The handshake messages "<<< TLS 1.x, Handshake [length NNNN], NewSessionTicket" from the server. */
function ticketMessages(trace: string): string[] {
  return trace.split("\n").filter((l) => l.startsWith("<<<") && l.includes("NewSessionTicket"));
}

/** What `openssl sess_id` says of a saved session: does it hold a ticket? */
async function sessionHasTicket(file: string): Promise<boolean> {
  const r = await exec("openssl", ["sess_id", "-in", file, "-noout", "-text"], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.out);
  return /TLS session ticket:/.test(r.out);
}

/** "New" or "Reused", as s_client reports the session of a reconnection. */
function sessionKind(trace: string): string {
  const m = /^(New|Reused), TLSv1\.[23]/m.exec(trace);
  assert.ok(m, `no New/Reused line:\n${trace}`);
  return m[1] ?? "";
}

let n = 0;
const sessFile = (): string => join(dir, `sess-${n++}.pem`);

describe("session tickets (openssl s_client)", () => {
  test("MX, TLS 1.3: no NewSessionTicket, nothing to resume", async () => {
    const file = sessFile();
    const trace = await sClient(server(w), "smtp", "-tls1_3", { out: file });
    assert.match(trace, /New, TLSv1\.3/);
    assert.deepEqual(ticketMessages(trace), []);
    // s_client writes -sess_out only when it got something resumable.
    assert.ok(!existsSync(file) || !(await sessionHasTicket(file)), "a session ticket was saved");
  });

  test("MX, TLS 1.2: only an empty ticket (RFC 5077 §3.3), nothing to resume", async () => {
    const file = sessFile();
    const trace = await sClient(server(w), "smtp", "-tls1_2", { out: file });
    assert.match(trace, /New, TLSv1\.2/);
    const tickets = ticketMessages(trace);
    // 4 bytes of header, 4 of lifetime hint, 2 of ticket length: 0x0a, a ticket of 0 bytes.
    for (const t of tickets) assert.match(t, /^<<< TLS 1\.2, Handshake \[length 000a\], NewSessionTicket$/, t);
    if (existsSync(file)) {
      assert.equal(await sessionHasTicket(file), false);
      assert.equal(sessionKind(await sClient(server(w), "smtp", "-tls1_2", { in: file })), "New");
    }
  });

  for (const port of ["submission", "submissions"] as const) {
    for (const version of ["-tls1_3", "-tls1_2"] as const) {
      test(`${port}, ${version.slice(1)}: a ticket, and ${RESUMES} reconnections all resume (two worker threads share the key)`, async () => {
        const file = sessFile();
        const trace = await sClient(server(w), port, version, { out: file });
        assert.ok(ticketMessages(trace).length > 0, `no NewSessionTicket:\n${trace}`);
        assert.equal(await sessionHasTicket(file), true);
        const kinds: string[] = [];
        for (let i = 0; i < RESUMES; i++) kinds.push(sessionKind(await sClient(server(w), port, version, { in: file })));
        assert.deepEqual(kinds, Array<string>(RESUMES).fill("Reused"));
      });
    }
  }

  test("tls.mx_session_tickets = true: the MX issues tickets and resumes (TLS 1.3)", async () => {
    const file = sessFile();
    const trace = await sClient(server(on), "smtp", "-tls1_3", { out: file });
    assert.ok(ticketMessages(trace).length > 0, `no NewSessionTicket:\n${trace}`);
    assert.equal(await sessionHasTicket(file), true);
    assert.equal(sessionKind(await sClient(server(on), "smtp", "-tls1_3", { in: file })), "Reused");
  });
});

// ---------------------------------------------------------------- key exchange groups (Node's TLS client)

/** Handshake with `ecdhCurve` as the client's groups (the first gets a key share); the group the server chose. */
async function negotiatedGroup(s: Wardmail, port: "smtp" | "submissions", groups: string): Promise<string> {
  let socket: net.Socket | undefined;
  if (port === "smtp") {
    const plain = new SmtpWire(net.connect({ host: "127.0.0.1", port: s.smtpPort }));
    assert.equal((await plain.reply()).code, 220);
    assert.equal((await plain.command("EHLO client.test")).code, 250);
    assert.match((await plain.command("STARTTLS")).raw, /^220 /);
    socket = plain.detach();
  }
  const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const c = tls.connect({
      ...(socket !== undefined ? { socket } : { host: "127.0.0.1", port: s.submissionsPort }),
      servername: "mx.example.test",
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
      ecdhCurve: groups,
    });
    const timer = setTimeout(() => c.destroy(new Error("TLS handshake timeout")), 5000);
    c.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(c);
    });
    c.once("error", (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  try {
    const info = secure.getEphemeralKeyInfo() as { name?: string } | null;
    return info?.name ?? "";
  } finally {
    secure.destroy();
  }
}

describe("key exchange groups (Node's TLS client)", () => {
  for (const port of ["smtp", "submissions"] as const) {
    test(`${port}: a client offering X25519MLKEM768 first gets the post-quantum hybrid`, async () => {
      assert.equal(await negotiatedGroup(server(w), port, "X25519MLKEM768:X25519"), "X25519MLKEM768");
    });
  }

  test("a client with an X25519 key share that also supports X25519MLKEM768 is asked for the hybrid", async () => {
    assert.equal(await negotiatedGroup(server(w), "submissions", "X25519:X25519MLKEM768"), "X25519MLKEM768");
  });

  test("classical-only clients still connect (X25519, P-256)", async () => {
    assert.equal(await negotiatedGroup(server(w), "smtp", "X25519"), "X25519");
    assert.equal(await negotiatedGroup(server(w), "submissions", "P-256"), "prime256v1");
  });

  test("tls.groups from the config is what the server offers", async () => {
    // groups = "X25519:P-256": the hybrid is not offered, the client falls back.
    assert.equal(await negotiatedGroup(server(on), "submissions", "X25519MLKEM768:X25519"), "X25519");
    assert.equal(await negotiatedGroup(server(on), "smtp", "X25519MLKEM768:P-256"), "prime256v1");
  });
});
