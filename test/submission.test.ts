/**
 * Authenticated submission against a running Wardmail with real clients:
 * swaks (AUTH PLAIN/LOGIN over STARTTLS and implicit TLS), GNU gsasl (an
 * independent SCRAM-SHA-256(-PLUS) client), Nodemailer; AUTH refused before
 * TLS and on the MX port; the brute-force guard (delays, client block, name
 * lock) from several loopback source addresses. What an authenticated client
 * may send (sender ownership, hourly limits, trusted networks) is in
 * submission-policy.test.ts.
 *
 * Four servers (test/helpers/submission-servers.ts: main, limits, brute,
 * lockout), started together in before(); one test adds an account with
 * the CLI.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import nodemailer from "nodemailer";
import type { Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { PW, submissionServers, token, type SubmissionServerName } from "./helpers/submission-servers.ts";
import { authMechanisms, authPlain, loggedIn, logLines, mailWith, openSession, queueList, run, waitForLog } from "./peers/submission.ts";
import { scramWrongProof, swaks, wardmailReceived as received, type SessionOptions } from "./peers/submission.ts";

const servers = submissionServers(["main", "limits", "brute", "lockout"]);
const need = (name: SubmissionServerName): Wardmail => servers.get(name);

// ---------------------------------------------------------------- swaks

describe("swaks submits with AUTH", () => {
  const cases = [
    { port: (s: Wardmail) => s.submissionsPort, tls: "--tlsc", role: "submissions (implicit TLS)" },
    { port: (s: Wardmail) => s.submissionPort, tls: "--tls", role: "submission (STARTTLS)" },
  ];
  for (const c of cases) {
    for (const mech of ["PLAIN", "LOGIN"]) {
      test(`${c.role}, AUTH ${mech}: 235, delivered to an account, a remote recipient queued`, async () => {
        const s = need("main");
        const t = token(`swaks-${mech}`);
        const r = await swaks([
          "--server", `127.0.0.1:${c.port(s)}`, c.tls,
          "--auth", mech, "--auth-user", "alice@example.test", "--auth-password", PW.alice,
          "--from", "alice@example.test", "--to", "inbox@example.test,far@remote.test",
          "--header", `Subject: ${t}`,
        ]);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, new RegExp(` ~> AUTH ${mech}`));
        // LOGIN: swaks sends user and password after 334 prompts; the final reply is 235.
        assert.match(r.out, /<~ {2}235 2\.7\.0 /);
        const id = /250 2\.0\.0 Ok: queued as (\S+)/.exec(r.out)?.[1];
        assert.ok(id !== undefined, r.out);
        const text = await mailWith(s, "inbox@example.test", t);
        assert.match(received(text), / with ESMTPSA id \S+ \(using TLSv1\.3 with cipher /);
        // The local copy went to the Maildir; the remote one waits in the queue (no remote delivery yet).
        const entry = (await queueList(s)).find((e) => e.id === id);
        assert.ok(entry, `queued message ${id} not in the queue`);
        assert.ok(entry.to.includes("far@remote.test"), JSON.stringify(entry));
      });
    }
  }

  test("an account alias logs in and its mail lands in the account's Maildir (sent to an alias)", async () => {
    const s = need("main");
    const t = token("alias");
    const r = await swaks([
      "--server", `127.0.0.1:${s.submissionsPort}`, "--tlsc", "--auth", "PLAIN", "--auth-user", "ali@example.test", "--auth-password", PW.alice,
      "--from", "ali@example.test", "--to", "inbox-alias@example.test", "--header", `Subject: ${t}`,
    ]);
    assert.equal(r.code, 0, r.out);
    await mailWith(s, "inbox@example.test", t);
    assert.deepEqual(await s.maildir("inbox-alias@example.test"), []);
  });

  test("account made with `wardmail user add --password-stdin` logs in at once", async () => {
    const s = need("main");
    const add = await s.cli(["user", "add", "erin@example.test", "--password-stdin", "--config", s.configPath], "erin-password-9\n");
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.doesNotMatch(add.stdout + add.stderr, /erin-password-9/);
    const tok = token("cli");
    const r = await swaks([
      "--server", `127.0.0.1:${s.submissionPort}`, "--tls", "--auth", "LOGIN", "--auth-user", "erin@example.test", "--auth-password", "erin-password-9",
      "--from", "erin@example.test", "--to", "inbox@example.test", "--header", `Subject: ${tok}`,
    ]);
    assert.equal(r.code, 0, r.out);
    await mailWith(s, "inbox@example.test", tok);
    // And mail to the new account is delivered to its own Maildir.
    const back = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--from", "x@sender.test", "--to", "erin@example.test", "--header", `Subject: ${tok}-back`]);
    assert.equal(back.code, 0, back.out);
    await mailWith(s, "erin@example.test", `${tok}-back`);
  });
});

// ---------------------------------------------------------------- no AUTH without TLS, none on the MX

describe("AUTH needs TLS and is not offered on the MX port", () => {
  test("submission without STARTTLS: no AUTH advertised (swaks gives up), AUTH 538 5.7.11, MAIL 530", async () => {
    const s = need("main");
    const r = await swaks(["--server", `127.0.0.1:${s.submissionPort}`, "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", PW.alice, "--to", "inbox@example.test"]);
    assert.equal(r.code, 28, r.out);
    assert.match(r.out, /Host did not advertise authentication/);
    assert.doesNotMatch(r.out, /-> AUTH/);

    const { wire, ehlo } = await openSession(s.submissionPort, { tls: "none" });
    try {
      assert.deepEqual(authMechanisms(ehlo), []);
      assert.ok(ehlo.lines.includes("STARTTLS"), ehlo.raw);
      assert.match((await authPlain(wire, "alice@example.test", PW.alice)).raw, /^538 5\.7\.11 /);
      assert.match((await wire.command("AUTH LOGIN")).raw, /^538 5\.7\.11 /);
      assert.equal((await wire.command("MAIL FROM:<alice@example.test>")).raw, "530 5.7.0 Must issue a STARTTLS command first\r\n");
    } finally {
      wire.close();
    }
  });

  test("submission after STARTTLS: AUTH with SCRAM-SHA-256-PLUS (TLS 1.3) advertised, MAIL without AUTH 530 5.7.0", async () => {
    const s = need("main");
    const { wire, ehlo, tlsSocket } = await openSession(s.submissionPort, { tls: "starttls" });
    try {
      assert.equal(tlsSocket?.getProtocol(), "TLSv1.3");
      assert.deepEqual(authMechanisms(ehlo), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"]);
      assert.equal((await wire.command("MAIL FROM:<alice@example.test>")).raw, "530 5.7.0 Authentication required\r\n");
    } finally {
      wire.close();
    }
  });

  test("TLS 1.2: AUTH offered without -PLUS (no tls-exporter channel binding)", async () => {
    const s = need("main");
    const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${s.submissionsPort}`, "-tls1_2", "-quiet", "-ign_eof"], { steps: [{ send: "EHLO client.test\r\n", waitFor: /\n250 / }, { send: "QUIT\r\n" }] });
    assert.match(r.out, /250-AUTH SCRAM-SHA-256 PLAIN LOGIN\r?\n/, r.out);
  });

  for (const tls of ["none", "starttls"] as const) {
    test(`MX port (${tls === "none" ? "plain" : "after STARTTLS"}): no AUTH in EHLO, AUTH gets 502 5.5.1`, async () => {
      const s = need("main");
      const { wire, ehlo } = await openSession(s.smtpPort, { tls });
      try {
        assert.deepEqual(authMechanisms(ehlo), []);
        assert.match((await authPlain(wire, "alice@example.test", PW.alice)).raw, /^502 5\.5\.1 /);
        // Unauthenticated mail to a local account still works on the MX.
        assert.equal((await wire.command("MAIL FROM:<x@sender.test>")).code, 250);
        assert.equal((await wire.command("RCPT TO:<alice@example.test>")).code, 250);
      } finally {
        wire.close();
      }
    });
  }

  test("auth.on_mx = true: the MX port offers AUTH after STARTTLS only; logged in, it relays", async () => {
    const s = need("limits");
    const plain = await openSession(s.smtpPort, { tls: "none" });
    try {
      assert.deepEqual(authMechanisms(plain.ehlo), []);
      assert.match((await authPlain(plain.wire, "alice@example.test", PW.alice)).raw, /^538 5\.7\.11 /);
      // Not a submission port: MAIL needs no AUTH, but relaying does.
      assert.equal((await plain.wire.command("MAIL FROM:<x@sender.test>")).code, 250);
      assert.match((await plain.wire.command("RCPT TO:<far@remote.test>")).raw, /^554 5\.7\.1 /);
    } finally {
      plain.wire.close();
    }
    const { wire, ehlo } = await openSession(s.smtpPort, { tls: "starttls" });
    try {
      assert.ok(authMechanisms(ehlo).includes("PLAIN"), ehlo.raw);
      assert.equal((await authPlain(wire, "alice@example.test", PW.alice)).code, 235);
      assert.equal((await wire.command("MAIL FROM:<alice@example.test>")).code, 250);
      assert.equal((await wire.command("RCPT TO:<far@remote.test>")).code, 250);
    } finally {
      wire.close();
    }
  });

  test("wrong password and unknown user get the same 535 5.7.8; malformed 501 5.5.2; secrets stay out of the log", async () => {
    const s = need("main");
    const { wire } = await openSession(s.submissionsPort, { tls: "implicit" });
    try {
      const wrong = await authPlain(wire, "alice@example.test", "not-the-Password-77");
      const unknown = await authPlain(wire, "nobody-here@example.test", "not-the-Password-77");
      assert.equal(wrong.raw, "535 5.7.8 Authentication credentials invalid\r\n");
      assert.equal(unknown.raw, wrong.raw);
      const malformed = await wire.command(`AUTH PLAIN ${Buffer.from("no-nul-separators").toString("base64")}`);
      assert.match(malformed.raw, /^501 5\.5\.2 /);
      assert.equal((await authPlain(wire, "alice@example.test", PW.alice)).code, 235);
    } finally {
      wire.close();
    }
    await waitForLog(() => s.output(), "auth failed", (l) => l.user === "nobody-here@example.test");
    await waitForLog(() => s.output(), "auth failed", (l) => l.user === "alice@example.test" && l.mechanism === "PLAIN");
    const failed = logLines(s.output(), "auth failed");
    assert.ok(failed.some((l) => l.user === "alice@example.test" && l.mechanism === "PLAIN" && l.ip === "127.0.0.1"), JSON.stringify(failed));
    assert.ok(failed.some((l) => l.user === "nobody-here@example.test"), JSON.stringify(failed));
    assert.doesNotMatch(s.output(), /not-the-Password-77|alice-password-1/);
  });
});

// ---------------------------------------------------------------- gsasl

describe("GNU gsasl as an independent SASL client (STARTTLS on the submission port)", () => {
  const missing = peerSkip(binaryMissing("gsasl", ["--version"], "gsasl"));
  /**
   * gsasl checks the server certificate against the host name it connects
   * to (here 127.0.0.1; --hostname does not change that), so the `limits`
   * server has an operator certificate that also names IP 127.0.0.1; the
   * default self-signed one names only server.hostname.
   */
  function gsasl(mech: string[], user: string, password: string): ReturnType<typeof run> {
    const s = need("limits");
    return run("gsasl", ["--smtp", `--connect=127.0.0.1:${s.submissionPort}`, `--x509-ca-file=${servers.limitsCert}`, ...mech, "-a", user, "-p", password, "-d"]);
  }

  test("SCRAM-SHA-256-PLUS (tls-exporter channel binding): 235", { skip: missing }, async () => {
    const r = await gsasl(["-m", "SCRAM-SHA-256-PLUS"], "alice@example.test", PW.alice);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /TLS X\.509 Verification: The certificate is trusted/);
    assert.match(r.out, /^AUTH SCRAM-SHA-256-PLUS\r?$/m);
    // The client-first message (base64, the line after "334 "): gs2 header "p=tls-exporter" (RFC 9266).
    const clientFirst = /^334 \r?\n([A-Za-z0-9+/=]+)\r?$/m.exec(r.out)?.[1] ?? "";
    assert.match(Buffer.from(clientFirst, "base64").toString(), /^p=tls-exporter,,n=alice@example\.test,r=/);
    assert.match(r.out, /^235 2\.7\.0 /m);
  });

  test("SCRAM-SHA-256 without channel binding (--no-cb): 235", { skip: missing }, async () => {
    // gsasl 2.2.0's SCRAM-SHA-256 client gives up on its own side ("mechanism
    // error") when it holds channel binding data, hence --no-cb.
    const r = await gsasl(["-m", "SCRAM-SHA-256", "--no-cb"], "alice@example.test", PW.alice);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^AUTH SCRAM-SHA-256\r?$/m);
    assert.match(r.out, /^235 2\.7\.0 /m);
  });

  test("SCRAM-SHA-256-PLUS with a wrong password: 535, non-zero exit", { skip: missing }, async () => {
    const r = await gsasl(["-m", "SCRAM-SHA-256-PLUS"], "alice@example.test", "wrong-password-0");
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /^535 5\.7\.8 /m);
    assert.doesNotMatch(r.out, /^235 /m);
  });

  test("an app password works with SCRAM-SHA-256-PLUS", { skip: missing }, async () => {
    assert.ok(servers.appPassword.length > 0);
    const r = await gsasl(["-m", "SCRAM-SHA-256-PLUS"], "alice@example.test", servers.appPassword);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^235 2\.7\.0 /m);
  });

  for (const mech of ["PLAIN", "LOGIN"]) {
    test(`${mech}: 235`, { skip: missing }, async () => {
      const r = await gsasl(["-m", mech], "alice@example.test", PW.alice);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`^AUTH ${mech}\\r?$`, "m"));
      assert.match(r.out, /^235 2\.7\.0 /m);
    });
  }
});

// ---------------------------------------------------------------- Nodemailer

describe("Nodemailer", () => {
  async function send(opts: { port: "submissions" | "submission"; pass: string; authMethod?: string; subject: string }): Promise<{ response: string }> {
    const s = need("main");
    const ca = await readFile(join(s.dataDir, "tls", "selfsigned.crt"));
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: opts.port === "submissions" ? s.submissionsPort : s.submissionPort,
      secure: opts.port === "submissions",
      requireTLS: opts.port === "submission",
      auth: { user: "alice@example.test", pass: opts.pass },
      ...(opts.authMethod !== undefined ? { authMethod: opts.authMethod } : {}),
      // The self-signed certificate names server.hostname only: verify it under that name.
      tls: { ca, servername: "mx.example.test" },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 10_000,
    });
    try {
      return (await transport.sendMail({ from: "Alice <alice@example.test>", to: "inbox@example.test", subject: opts.subject, text: "sent by nodemailer\n" })) as { response: string };
    } finally {
      transport.close();
    }
  }

  const cases = [
    { port: "submissions", authMethod: undefined },
    { port: "submission", authMethod: undefined },
    { port: "submissions", authMethod: "LOGIN" },
  ] as const;
  for (const c of cases) {
    test(`${c.port}${c.authMethod ? ` with ${c.authMethod}` : ""}: certificate verified, delivered with ESMTPSA`, async () => {
      const s = need("main");
      const t = token(`nodemailer-${c.port}`);
      const info = await send({ port: c.port, pass: PW.alice, subject: t, ...(c.authMethod ? { authMethod: c.authMethod } : {}) });
      assert.match(info.response, /^250 2\.0\.0 Ok: queued as \S+/);
      const text = await mailWith(s, "inbox@example.test", t);
      assert.match(received(text), /by mx\.example\.test \(Wardmail\) with ESMTPSA id /);
      assert.match(text, /^From: Alice <alice@example\.test>\r$/m);
    });
  }

  test("wrong password: rejects with EAUTH and responseCode 535", async () => {
    await assert.rejects(send({ port: "submissions", pass: "wrong-password-0", subject: "never" }), (err: { code?: string; responseCode?: number }) => {
      assert.equal(err.code, "EAUTH");
      assert.equal(err.responseCode, 535);
      return true;
    });
  });
});

// ---------------------------------------------------------------- brute force

describe("brute-force guard", () => {
  const from2: SessionOptions = { tls: "implicit", localAddress: "127.0.0.2" };

  test("5 failures from 127.0.0.2 block it (454 4.7.0 even for the right password); 127.0.0.1 still logs in; delays grow", async () => {
    const s = need("brute");
    const replies: { code: number; raw: string; ms: number }[] = [];
    // At most 20 attempts, one connection each (a session ends after limits.max_errors errors anyway).
    for (let i = 0; i < 20; i++) {
      const { wire } = await openSession(s.submissionsPort, from2);
      try {
        const t0 = performance.now();
        const r = await scramWrongProof(wire, "alice@example.test");
        replies.push({ code: r.code, raw: r.raw, ms: performance.now() - t0 });
      } finally {
        wire.close();
      }
      if (replies.at(-1)?.code === 454) break;
    }
    assert.deepEqual(replies.map((r) => r.code), [535, 535, 535, 535, 535, 454], JSON.stringify(replies));
    assert.match(replies[5]?.raw ?? "", /^454 4\.7\.0 /);
    // failure_delay 20 ms doubling per failure of the client, capped at 100 ms:
    // 20, 40, 80, 100 (not 160), 100. SCRAM checks no password hash, so the
    // time is mostly the delay; only lower bounds are asserted (never early).
    const expected = [20, 40, 80, 100, 100];
    expected.forEach((ms, i) => assert.ok((replies[i]?.ms ?? 0) >= ms - 2, `failure ${i + 1} answered after ${replies[i]?.ms} ms, expected >= ${ms}`));

    const blocked = await openSession(s.submissionsPort, from2);
    try {
      assert.match((await authPlain(blocked.wire, "alice@example.test", PW.alice)).raw, /^454 4\.7\.0 /);
    } finally {
      blocked.wire.close();
    }
    const other = await loggedIn(s.submissionsPort, "alice@example.test", PW.alice, { tls: "implicit" });
    other.wire.close();

    // The server writes its lines after the client has its reply: wait for the fifth.
    await waitForLog(() => s.output(), "auth failed", (l) => l.ip === "127.0.0.2" && logLines(s.output(), "auth failed").filter((x) => x.ip === "127.0.0.2").length >= 5);
    await waitForLog(() => s.output(), "auth blocked", (l) => l.ip === "127.0.0.2" && l.scope === "client");
    const failed = logLines(s.output(), "auth failed").filter((l) => l.ip === "127.0.0.2");
    assert.equal(failed.length, 5, JSON.stringify(failed));
    for (const l of failed) assert.deepEqual([l.user, l.mechanism, typeof l.reason], ["alice@example.test", "SCRAM-SHA-256", "string"]);
    const blocks = logLines(s.output(), "auth blocked").filter((l) => l.ip === "127.0.0.2");
    assert.ok(blocks.some((l) => l.scope === "client"), JSON.stringify(blocks));
  });

  /** One AUTH PLAIN on a new implicit-TLS connection to `lockout` from localAddress; the reply. */
  async function attempt(localAddress: string, user: string, password: string): Promise<string> {
    const { wire } = await openSession(need("lockout").submissionsPort, { tls: "implicit", localAddress });
    try {
      return (await authPlain(wire, user, password)).raw;
    } finally {
      wire.close();
    }
  }

  test("a name is locked after 4 failures from two addresses: the right password gets 454 from a third; alice still logs in", async () => {
    const s = need("lockout");
    for (const user of ["bob@example.test", "ghost@example.test"]) {
      for (let i = 0; i < 4; i++) {
        assert.match(await attempt(i % 2 === 0 ? "127.0.0.4" : "127.0.0.5", user, `wrong-guess-${i}x`), /^535 5\.7\.8 /);
      }
      // Known or not, a locked name answers the same: nothing tells whether it exists.
      assert.match(await attempt("127.0.0.6", user, "wrong-guess-9x"), /^454 4\.7\.0 /, user);
    }
    assert.match(await attempt("127.0.0.6", "bob@example.test", PW.bob), /^454 4\.7\.0 /);
    assert.match(await attempt("127.0.0.6", "alice@example.test", PW.alice), /^235 2\.7\.0 /);
    assert.ok(await waitForLog(() => s.output(), "auth blocked", (l) => l.scope === "user" && l.user === "bob@example.test"), s.output().slice(-3000));
  });

  // Guesses through an alias count for its account: the lock then holds for
  // the right password too, under the alias and under the account's own name.
  test("a name locked through an alias stays locked for the right password, under the alias and the account", async () => {
    for (let i = 0; i < 4; i++) assert.match(await attempt(i % 2 === 0 ? "127.0.0.7" : "127.0.0.8", "frankie@example.test", `wrong-guess-${i}x`), /^535 /);
    assert.match(await attempt("127.0.0.9", "frankie@example.test", "wrong-guess-9x"), /^454 4\.7\.0 /);
    assert.match(await attempt("127.0.0.9", "frankie@example.test", PW.bob), /^454 4\.7\.0 /);
    assert.match(await attempt("127.0.0.10", "frank@example.test", PW.bob), /^454 4\.7\.0 /);
  });
});
