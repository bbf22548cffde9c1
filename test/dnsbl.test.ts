/**
 * DNSBL/DNSWL end to end: a real Knot DNS server on loopback serves a
 * blocklist zone and an allowlist zone; Wardmail asks it through its own
 * resolver ([dns] servers); swaks connects from different loopback source
 * addresses (--local-interface 127.0.0.N), each a client with its own
 * listing:
 *
 *   127.0.0.2  listed in bl.test (2.0.0.127.bl.test A 127.0.0.2)  → 550 5.7.1 at MAIL
 *   127.0.0.3  listed in bl.test and in wl.test (weight -3)       → accepted
 *   127.0.0.4  bl.test answers 127.255.255.254 (Spamhaus: "query
 *              through an open resolver"), an error code           → logged as an error, accepted
 *   127.0.0.5  on no list                                          → accepted
 *   127.0.0.6  listed, but in relay.trusted_networks              → accepted (not looked up)
 *   127.0.0.2  authenticated on the submission port                → accepted (not looked up)
 *
 * A second Wardmail's [dns] points at a loopback UDP socket that never
 * answers: the listed client is accepted (fail open) and the failure logged.
 * Zones: bl.test weight 2, wl.test weight -3, threshold 2.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { knotMissing, startKnot, zoneText, type Knot } from "./peers/knot.ts";
import { logLines, mailWith, swaks, swaksReply, waitForLog } from "./peers/submission.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";

const skip = peerSkip(knotMissing(), binaryMissing("swaks", ["--version"], "swaks"));

const DNSBL = `[dnsbl]
zones = [{ zone = "bl.test", weight = 2 }, { zone = "wl.test", weight = -3 }]
threshold = 2
`;

let knot: Knot | undefined;
let main: Wardmail | undefined;
let down: Wardmail | undefined;
let silent: dgram.Socket | undefined;

function need<T>(x: T | undefined): T {
  assert.ok(x, "set up in before()");
  return x;
}

/** One message from the loopback address `from` to user@example.test on port, with token as subject. */
function send(port: number, from: string, token: string, extra: string[] = []) {
  return swaks(["--server", `127.0.0.1:${port}`, "--local-interface", from, "--from", "sender@client.test", "--to", "user@example.test", "--header", `Subject: ${token}`, ...extra]);
}

/** Waits until the server logged msg with the given field values (at most 10 s). */
async function logged(w: Wardmail, msg: string, fields: Record<string, unknown>): Promise<Record<string, unknown>> {
  const line = await waitForLog(() => w.output(), msg, (l) => Object.entries(fields).every(([k, v]) => JSON.stringify(l[k]) === JSON.stringify(v)), 10_000);
  return line ?? assert.fail(`no "${msg}" ${JSON.stringify(fields)} in the log:\n${w.output().slice(-3000)}`);
}

describe("DNSBL and DNSWL with a real DNS server", { skip }, () => {
  before(async () => {
    knot = await startKnot({
      zones: {
        "bl.test": zoneText("bl.test", ["2.0.0.127 A 127.0.0.2", "3.0.0.127 A 127.0.0.2", "4.0.0.127 A 127.255.255.254", "6.0.0.127 A 127.0.0.2"]),
        "wl.test": zoneText("wl.test", ["3.0.0.127 A 127.0.10.2"]),
      },
    });
    silent = dgram.createSocket("udp4");
    const s = silent;
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
    [main, down] = await Promise.all([
      startWardmail({
        workers: 1,
        checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${knot.port}"]\ntimeout = 1000\nattempts = 2\n${DNSBL}`,
        extra: '[relay]\ntrusted_networks = ["127.0.0.6/32"]\n',
      }),
      startWardmail({
        workers: 1,
        checks: `[checks]\nenabled = false\n[dns]\nservers = ["127.0.0.1:${s.address().port}"]\ntimeout = 200\nattempts = 1\n${DNSBL}`,
      }),
    ]);
  });

  after(async () => {
    for (const w of [main, down]) {
      if (!w) continue;
      await w.stop();
      await w.cleanup();
    }
    silent?.close();
    await knot?.stop();
  });

  test("a listed client is refused at MAIL with 550 5.7.1 naming the list, on every MAIL", async () => {
    const w = need(main);
    for (const tok of ["dnsbl-listed-1", "dnsbl-listed-2"]) {
      const r = await send(w.smtpPort, "127.0.0.2", tok);
      const mail = swaksReply(r.out, "MAIL FROM:");
      assert.equal(mail?.code, 550, r.out);
      assert.equal(mail?.enhanced, "5.7.1");
      assert.match(mail?.line ?? "", /Service unavailable; client \[127\.0\.0\.2\] blocked using bl\.test/);
      assert.equal(swaksReply(r.out, "RCPT TO:"), undefined, "no transaction after the refusal");
    }
    const line = await logged(w, "client listed by DNSBL", { client: "127.0.0.2" });
    assert.deepEqual(line.listedBy, ["bl.test"]);
    assert.equal(line.score, 2);
    // The second connection was answered from the cache.
    await logged(w, "client listed by DNSBL", { client: "127.0.0.2", cached: true });
    assert.equal((await w.maildir("user@example.test")).filter((f) => f.includes("dnsbl-listed")).length, 0);
  });

  test("an error-code answer (127.255.255.254) is logged as an error and the client is accepted", async () => {
    const w = need(main);
    const r = await send(w.smtpPort, "127.0.0.4", "dnsbl-errorcode");
    assert.equal(r.code, 0, r.out);
    await mailWith(w, "user@example.test", "dnsbl-errorcode");
    const line = await logged(w, "DNSBL answered with an error code, not a listing; not counted (check the list's terms and that dns.servers is your own resolver)", { client: "127.0.0.4" });
    assert.equal(line.level, 50, "logged at error level");
    assert.equal(line.zone, "bl.test");
    assert.deepEqual(line.answers, ["127.255.255.254"]);
  });

  test("a client on the allowlist (negative weight) passes although a blocklist lists it; an unlisted client passes", async () => {
    const w = need(main);
    const r = await send(w.smtpPort, "127.0.0.3", "dnsbl-allowlisted");
    assert.equal(r.code, 0, r.out);
    await mailWith(w, "user@example.test", "dnsbl-allowlisted");
    const line = await logged(w, "client on a DNS list, under the threshold", { client: "127.0.0.3" });
    assert.equal(line.score, -1);
    assert.deepEqual(line.listedBy, ["bl.test", "wl.test"]);
    const clean = await send(w.smtpPort, "127.0.0.5", "dnsbl-clean");
    assert.equal(clean.code, 0, clean.out);
    await mailWith(w, "user@example.test", "dnsbl-clean");
  });

  test("trusted networks and authenticated submission are not looked up", async () => {
    const w = need(main);
    const trusted = await send(w.smtpPort, "127.0.0.6", "dnsbl-trusted");
    assert.equal(trusted.code, 0, trusted.out);
    await mailWith(w, "user@example.test", "dnsbl-trusted");
    const listedBefore = logLines(w.output(), "client listed by DNSBL").length;
    const add = await w.cli(["user", "add", "alice@example.test", "--password-stdin", "--config", w.configPath], "alice-password-9\n");
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const auth = await swaks([
      "--server", `127.0.0.1:${w.submissionPort}`, "--local-interface", "127.0.0.2", "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "alice-password-9",
      "--from", "alice@example.test", "--to", "user@example.test", "--header", "Subject: dnsbl-submission",
    ]);
    assert.equal(auth.code, 0, auth.out);
    await mailWith(w, "user@example.test", "dnsbl-submission");
    // 127.0.0.6 and the authenticated 127.0.0.2 are listed in bl.test, yet no lookup said so.
    assert.equal(logLines(w.output(), "client listed by DNSBL").length, listedBefore);
    assert.equal(logLines(w.output(), "client listed by DNSBL").some((l) => l.client === "127.0.0.6"), false);
  });

  test("DNS down: the listed client is accepted (fail open) and the failed lookup is logged", async () => {
    const w = need(down);
    const r = await send(w.smtpPort, "127.0.0.2", "dnsbl-dns-down");
    assert.equal(r.code, 0, r.out);
    assert.equal(swaksReply(r.out, "MAIL FROM:")?.code, 250);
    await mailWith(w, "user@example.test", "dnsbl-dns-down");
    const line = await logged(w, "DNSBL lookup failed; not counted (fail open)", { client: "127.0.0.2", zone: "bl.test" });
    assert.equal(line.level, 40, "logged as a warning");
    assert.equal(line.error, "ETIMEOUT");
  });
});
