/**
 * A slow client is learnt from its first command timeout (issue 11, the
 * flood bench's first run): a client one of whose sessions let a command
 * line reach command_timeout (a byte now and then, the line never ends) is
 * remembered for slow_client_memory; while the listener is under pressure
 * its new connections get 421 4.7.0 after slow_refusal_delay (logged as
 * `client limit` with `limit` `command_timeout`), so that its sessions stop costing the room and the
 * work that other clients need. Without pressure it is served as any client,
 * and a client that never was slow (swaks) delivers under pressure.
 *
 * One worker (the pressure is per worker), max_mx_connections 5: four open
 * connections are 80 %, the pressure threshold.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { openFrom, SmtpWire } from "./peers/smtp-client.ts";
import { logLines, requireBinary, swaks, waitForLog } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const COMMAND_TIMEOUT_S = 2;
let w: Wardmail | undefined;
const server = (): Wardmail => {
  assert.ok(w, "server not started");
  return w;
};

before(async () => {
  requireBinary("swaks", ["--version"]);
  // stress_timeout above command_timeout: the idle fillers below hold the pressure for 8 s.
  w = await startWardmail({
    workers: 1,
    extra: `[limits]\nmax_mx_connections = 5\nmax_connections_per_client = 10\npregreet_delay = 0\ncommand_timeout = ${COMMAND_TIMEOUT_S}\nstress_timeout = 8`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});


async function firstReply(localAddress: string): Promise<{ wire: SmtpWire; raw: string }> {
  const wire = await openFrom(server().smtpPort, localAddress);
  const r = await wire.reply(5000);
  return { wire, raw: r.raw };
}

test("a client whose command timed out is refused while the listener is under pressure, served without it; others are not affected", { timeout: 60_000 }, async () => {
  const s = server();
  const slow = "127.0.0.31";
  // A slowloris session: a byte every 500 ms into a line that never ends.
  const a = await firstReply(slow);
  assert.match(a.raw, /^220 /);
  const line = "EHLO slowloris.example.test";
  let i = 0;
  const trickle = setInterval(() => {
    if (!a.wire.socket.destroyed) a.wire.send(line[i++ % line.length] ?? "x");
  }, 500);
  try {
    assert.match((await a.wire.reply(COMMAND_TIMEOUT_S * 1000 + 3000)).raw, /^421 4\.4\.2 /);
  } finally {
    clearInterval(trickle);
    a.wire.close();
  }

  // No pressure (nothing else open): the slow client is served as any client.
  const quiet = await firstReply(slow);
  assert.match(quiet.raw, /^220 /);
  quiet.wire.close();
  await sleep(200); // the server sees it closed before the fillers come

  // Four idle connections from another client: 80 % of max_mx_connections, the listener is under pressure.
  const fillers: SmtpWire[] = [];
  try {
    for (let k = 0; k < 4; k++) {
      const f = await firstReply("127.0.0.32");
      assert.match(f.raw, /^220 /);
      fillers.push(f.wire);
    }
    const t0 = Date.now();
    const refused = await firstReply(slow);
    const took = Date.now() - t0;
    assert.match(refused.raw, /^421 4\.7\.0 Too many connections from your address/);
    refused.wire.close();
    // The refusal comes after slow_refusal_delay (2 s), so that the slow client comes back less often.
    assert.ok(took >= 1900 && took < 4000, `refused after ${took} ms`);
    const logged = await waitForLog(() => s.output(), "client limit", (l) => l.ip === slow && l.limit === "command_timeout");
    assert.ok(logged, "no client limit line for command_timeout");
    assert.equal(logged.listener, "smtp");

    // A client that never was slow delivers under the same pressure (a real client: swaks).
    const before = (await s.maildir("user@example.test")).length;
    const r = await swaks(["--server", `127.0.0.1:${s.smtpPort}`, "--local-interface", "127.0.0.33", "--from", "x@sender.test", "--to", "user@example.test", "--header", "Subject: under pressure"]);
    assert.equal(r.code, 0, r.out);
    assert.equal((await s.waitForMail("user@example.test", before + 1)).length, before + 1);
  } finally {
    for (const f of fillers) f.close();
  }

  // The pressure is gone: the slow client is served again.
  let again = "";
  for (let k = 0; k < 20 && !again.startsWith("220 "); k++) {
    await sleep(100);
    const c = await firstReply(slow);
    again = c.raw;
    c.wire.close();
  }
  assert.match(again, /^220 /);
  // Logged once for the client and limit in the 10 s interval, whatever the number of refusals.
  assert.equal(logLines(s.output(), "client limit").filter((l) => l.ip === slow).length, 1);
});
