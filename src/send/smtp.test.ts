/**
 * The submission client against scripted hostile servers on loopback (a
 * few lines of SMTP written here, TLS with a generated certificate): no
 * STARTTLS offered, plaintext injected after "220" to STARTTLS, SCRAM
 * servers that do not prove themselves, a refused recipient, an untrusted
 * certificate. Each records what the client sent, to show what was NOT sent.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { after, before, test } from "node:test";
import { generateCertificate } from "../tls/index.ts";
import { submit, SubmitError, type SubmitOptions } from "./smtp.ts";
import { createMechanism } from "../auth/index.ts";
import { deriveScramKeys } from "../auth/index.ts";
import type { SaslMechanism } from "../auth/index.ts";

let cert = { certPem: "", keyPem: "" };

before(async () => {
  cert = await generateCertificate(["mx.example.test"]);
});

type Handler = (line: string, io: { send(s: string): void; starttls(): void; state: Record<string, string> }) => void;

interface Scripted {
  readonly port: number;
  readonly seen: string[];
  close(): Promise<void>;
}

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A server that greets, offers `ehlo` lines, and answers each line with handler. */
async function scripted(ehlo: string[], handler: Handler, greet = "220 mx.example.test ESMTP\r\n", maxVersion: tls.SecureVersion = "TLSv1.3"): Promise<Scripted> {
  const seen: string[] = [];
  const server = net.createServer((raw) => {
    let sock: net.Socket = raw;
    let buf = "";
    const state: Record<string, string> = {};
    const io = {
      send: (s: string) => sock.write(s),
      starttls: () => {
        raw.removeAllListeners("data");
        const t = new tls.TLSSocket(raw, { isServer: true, cert: cert.certPem, key: cert.keyPem, secureContext: tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem, maxVersion }) });
        sock = t;
        buf = "";
        t.on("data", onData);
        t.on("error", () => undefined);
      },
      state,
    };
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        seen.push(line);
        if (/^EHLO /i.test(line)) io.send(["250-mx.example.test", ...ehlo].map((l, n, a) => (n === a.length - 1 ? l.replace(/^250-/, "250 ") : l)).join("\r\n") + "\r\n");
        else if (/^QUIT/i.test(line)) {
          io.send("221 bye\r\n");
          sock.end();
        } else handler(line, io);
      }
    };
    raw.on("data", onData);
    raw.on("error", () => undefined);
    raw.write(greet);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return { port, seen, close: () => new Promise((r) => server.close(() => r())) };
}

function opts(port: number, extra: Partial<SubmitOptions> = {}): SubmitOptions {
  return {
    address: "127.0.0.1",
    port,
    tlsName: "mx.example.test",
    implicitTls: false,
    insecureTls: false,
    ca: Buffer.from(cert.certPem),
    user: "alice@example.test",
    password: "secret-password",
    from: "alice@example.test",
    to: ["bob@example.test"],
    message: Buffer.from("From: alice@example.test\r\n\r\nhi\r\n"),
    timeoutMs: 5000,
    ...extra,
  };
}

const starttlsThen = (rest: Handler): Handler => (line, io) => {
  if (/^STARTTLS/i.test(line)) {
    io.send("220 go ahead\r\n");
    io.starttls();
  } else rest(line, io);
};

test("no STARTTLS offered: refused before AUTH, nothing sent in clear", async () => {
  const s = await scripted(["250-AUTH PLAIN", "250-8BITMIME"], (_l, io) => io.send("500 no\r\n"));
  await assert.rejects(submit(opts(s.port)), (e: unknown) => e instanceof SubmitError && e.kind === "cannot" && /does not offer STARTTLS/.test(e.message));
  assert.ok(!s.seen.some((l) => /^(AUTH|MAIL)/i.test(l)), s.seen.join("|"));
});

test("plaintext injected after the 220 to STARTTLS is discarded; PLAIN over TLS then works", async () => {
  const s = await scripted(["250-STARTTLS", "250-AUTH PLAIN"], (line, io) => {
    if (/^STARTTLS/i.test(line)) {
      io.send("220 go ahead\r\n250 injected\r\n535 injected\r\n");
      io.starttls();
    } else if (/^AUTH PLAIN /i.test(line)) io.send("235 2.7.0 ok\r\n");
    else if (/^MAIL|^RCPT/i.test(line)) io.send("250 2.1.0 ok\r\n");
    else if (/^DATA/i.test(line)) io.send("354 go\r\n");
    else if (line === ".") io.send("250 2.0.0 queued as X\r\n");
  });
  const r = await submit(opts(s.port));
  assert.equal(r.mechanism, "PLAIN");
  assert.match(r.reply, /^250 2\.0\.0 queued as X/);
  // The EHLO after TLS was answered by the server, not by the injected lines.
  assert.equal(s.seen.filter((l) => /^EHLO/.test(l)).length, 2);
});

function scramServer(final: (clientFinal: string, nonce: string) => string): Handler {
  return starttlsThen((line, io) => {
    const m = /^AUTH SCRAM-SHA-256 (\S+)$/i.exec(line);
    if (m) {
      const first = Buffer.from(m[1] as string, "base64").toString();
      io.state.nonce = (/,r=([^,]+)/.exec(first)?.[1] ?? "") + "srv";
      io.send(`334 ${Buffer.from(`r=${io.state.nonce},s=c2FsdHNhbHQ=,i=4096`).toString("base64")}\r\n`);
      io.state.step = "final";
    } else if (io.state.step === "final") {
      io.state.step = "";
      io.send(final(Buffer.from(line, "base64").toString(), io.state.nonce ?? ""));
    } else if (line === "*") io.send("501 5.7.0 cancelled\r\n");
    else io.send("250 ok\r\n");
  });
}

test("SCRAM: a server that says 235 without proving it knows the password gets no MAIL", async () => {
  const s = await scripted(["250-STARTTLS", "250-AUTH SCRAM-SHA-256 PLAIN"], scramServer(() => "235 2.7.0 ok\r\n"));
  await assert.rejects(submit(opts(s.port)), (e: unknown) => e instanceof SubmitError && /without proving/.test(e.message));
  assert.ok(!s.seen.some((l) => /^MAIL/i.test(l)), s.seen.join("|"));
});

test("SCRAM: a wrong server signature is refused (the exchange is cancelled with '*'), no MAIL", async () => {
  const s = await scripted(["250-STARTTLS", "250-AUTH SCRAM-SHA-256"], scramServer(() => `334 ${Buffer.from("v=" + Buffer.alloc(32, 1).toString("base64")).toString("base64")}\r\n`));
  await assert.rejects(submit(opts(s.port)), (e: unknown) => e instanceof SubmitError && /signature is wrong/.test(e.message));
  assert.ok(s.seen.includes("*"), s.seen.join("|"));
  assert.ok(!s.seen.some((l) => /^MAIL/i.test(l)), s.seen.join("|"));
});

test("a refused recipient: RSET, no DATA, exit kind 'refused' with the server's reply", async () => {
  const s = await scripted(
    ["250-STARTTLS", "250-AUTH PLAIN"],
    starttlsThen((line, io) => {
      if (/^AUTH/i.test(line)) io.send("235 2.7.0 ok\r\n");
      else if (/^RCPT TO:<carol/i.test(line)) io.send("550 5.1.1 no such user\r\n");
      else io.send("250 2.0.0 ok\r\n");
    }),
  );
  await assert.rejects(submit(opts(s.port, { to: ["bob@example.test", "carol@example.test"] })), (e: unknown) => e instanceof SubmitError && e.kind === "refused" && /carol@example\.test.*550 5\.1\.1 no such user.*nothing was sent/.test(e.message));
  assert.ok(s.seen.includes("RSET") && !s.seen.includes("DATA"), s.seen.join("|"));
});

test("certificate: untrusted or for another name fails before AUTH; --insecure-tls goes on", async () => {
  const s = await scripted(["250-STARTTLS", "250-AUTH PLAIN"], starttlsThen((line, io) => io.send(/^AUTH/i.test(line) ? "535 5.7.8 no\r\n" : "250 ok\r\n")));
  await assert.rejects(submit(opts(s.port, { ca: undefined as unknown as Buffer })), (e: unknown) => e instanceof SubmitError && e.kind === "cannot" && /certificate/i.test(e.message));
  await assert.rejects(submit(opts(s.port, { tlsName: "other.example.test" })), (e: unknown) => e instanceof SubmitError && e.kind === "cannot");
  assert.ok(!s.seen.some((l) => /^AUTH/i.test(l)), s.seen.join("|"));
  await assert.rejects(submit(opts(s.port, { ca: undefined as unknown as Buffer, insecureTls: true })), (e: unknown) => e instanceof SubmitError && e.kind === "refused" && /535 5\.7\.8/.test(e.message));
});

test("a server that sends an endless reply line is cut off", async () => {
  const s = await scripted([], () => undefined, "220-" + "x".repeat(10_000) + "\r\n");
  await assert.rejects(submit(opts(s.port)), (e: unknown) => e instanceof SubmitError && e.kind === "cannot" && /too long/.test(e.message));
});

/** Wardmail's own SCRAM server (src/auth) for alice, without channel binding (as a server on TLS 1.2, or one that offers no -PLUS). */
async function wardmailScram(): Promise<Handler> {
  const salt = Buffer.from("0123456789abcdef");
  const creds = { account: "alice@example.test", salt, iterations: 4096, keys: [await deriveScramKeys("secret-password", salt, 4096)] };
  const store = { checkPassword: () => Promise.resolve(undefined), scramCredentials: (u: string) => (u === "alice@example.test" ? creds : undefined) };
  let mech: SaslMechanism | undefined;
  const answer = (step: Awaited<ReturnType<SaslMechanism["step"]>>, io: Parameters<Handler>[1]): void => {
    if (step.kind === "challenge") io.send(`334 ${step.data.toString("base64")}\r\n`);
    else {
      mech = undefined;
      io.send(step.kind === "success" ? "235 2.7.0 ok\r\n" : "535 5.7.8 no\r\n");
    }
  };
  return starttlsThen((line, io) => {
    const m = /^AUTH (SCRAM-SHA-256) (\S+)$/i.exec(line);
    if (m) {
      io.state.first = Buffer.from(m[2] as string, "base64").toString();
      mech = createMechanism("SCRAM-SHA-256", { store, channelBinding: undefined, fakeSaltKey: Buffer.alloc(32) });
      void mech?.step(Buffer.from(m[2] as string, "base64")).then((st) => answer(st, io));
    } else if (mech !== undefined) {
      void mech.step(Buffer.from(line, "base64")).then((st) => answer(st, io));
    } else if (/^DATA/i.test(line)) io.send("354 go\r\n");
    else io.send(line === "." ? "250 2.0.0 queued\r\n" : "250 2.1.0 ok\r\n");
  });
}

test("SCRAM-SHA-256 with Wardmail's SCRAM server: on TLS 1.2 the client sends 'n' (no -PLUS), on TLS 1.3 without -PLUS offered 'y'", async () => {
  for (const [maxVersion, flag] of [["TLSv1.2", "n,,"], ["TLSv1.3", "y,,"]] as const) {
    const handler = await wardmailScram();
    let first = "";
    // On TLS 1.2 it even offers -PLUS (as a tls-unique server might): the client cannot bind there and does not use it.
    const auth = maxVersion === "TLSv1.2" ? "250-AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN" : "250-AUTH SCRAM-SHA-256 PLAIN";
    const s = await scripted(["250-STARTTLS", auth], (line, io) => {
      handler(line, io);
      first = io.state.first ?? first;
    }, undefined, maxVersion);
    const r = await submit(opts(s.port));
    assert.equal(r.mechanism, "SCRAM-SHA-256", maxVersion);
    assert.equal(r.tlsVersion, maxVersion);
    assert.ok(first.startsWith(flag), `${maxVersion}: ${first}`);
    const wrong = await submit(opts(s.port, { password: "wrong-password" })).then(() => undefined, (e: unknown) => e);
    assert.ok(wrong instanceof SubmitError && wrong.kind === "refused" && /535/.test(wrong.message), String(wrong));
  }
});
