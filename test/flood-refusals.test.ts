/**
 * A client that keeps coming back after its refusals gets them later
 * (issue 11, the flood bench's first run): the first refusals of a client
 * and limit in the log interval come at once, the ones after
 * REPEAT_REFUSALS (5) come after slow_refusal_delay (2 s), its socket
 * unread meanwhile, so that a flood reconnecting at once after each 421
 * comes back several times less often. The same for a client refused by a
 * full listener again and again while it holds connections there; a
 * client that holds none there, and another address, still get their
 * answer at once.
 *
 * One worker (the listener limits are per worker), real sockets from
 * 127.0.0.N source addresses, pregreet off (the greeting comes at once).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { openFrom, SmtpWire } from "./peers/smtp-client.ts";
import { logLines } from "./peers/submission.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";

const PER_CLIENT = 3;
const MX_CAP = 6;
let w: Wardmail | undefined;
const server = (): Wardmail => {
  assert.ok(w, "server not started");
  return w;
};

before(async () => {
  w = await startWardmail({
    workers: 1,
    extra: `[limits]\nmax_connections_per_client = ${PER_CLIENT}\nconnections_per_client_per_minute = 1000\nmax_mx_connections = ${MX_CAP}\npregreet_delay = 0`,
  });
});

after(async () => {
  if (w) {
    await w.stop();
    await w.cleanup();
  }
});

/** The first reply of a connection from localAddress and how long it took. */
async function firstReply(localAddress: string): Promise<{ wire: SmtpWire; raw: string; ms: number }> {
  const t0 = Date.now();
  const wire = await openFrom(server().smtpPort, localAddress);
  const r = await wire.reply(6000);
  return { wire, raw: r.raw, ms: Date.now() - t0 };
}

test("a client refused again and again for max_connections_per_client gets its later refusals after the delay; another client is answered at once", { timeout: 60_000 }, async () => {
  const s = server();
  const flood = "127.0.0.41";
  const held: SmtpWire[] = [];
  try {
    for (let i = 0; i < PER_CLIENT; i++) {
      const c = await firstReply(flood);
      assert.match(c.raw, /^220 /);
      held.push(c.wire);
    }
    // One after the other, as a flood loop: the first five refusals at once, the next ones held.
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const c = await firstReply(flood);
      assert.match(c.raw, /^421 4\.7\.0 Too many connections from your address/);
      times.push(c.ms);
      c.wire.close();
    }
    for (const ms of times.slice(0, 5)) assert.ok(ms < 1000, `an early refusal took ${ms} ms: ${times.join(", ")}`);
    for (const ms of times.slice(5)) assert.ok(ms >= 1900 && ms < 5000, `a repeated refusal took ${ms} ms: ${times.join(", ")}`);

    // Another address is not affected: greeted at once.
    const other = await firstReply("127.0.0.42");
    assert.match(other.raw, /^220 /);
    assert.ok(other.ms < 1000, `${other.ms} ms`);
    other.wire.close();

    // Still one log line for the client and limit in the interval (fail2ban's), whatever the number of refusals.
    const lines = logLines(s.output(), "client limit").filter((l) => l.ip === flood && l.limit === "max_connections_per_client");
    assert.equal(lines.length, 1, JSON.stringify(lines));
  } finally {
    for (const c of held) c.close();
  }
});

test("a full listener holds the refusals of a client that already has connections there and keeps coming back; a client with none gets room at once", { timeout: 60_000 }, async () => {
  const fillers: SmtpWire[] = [];
  try {
    // Two clients fill the MX listener (PER_CLIENT each).
    for (const from of ["127.0.0.43", "127.0.0.44"]) {
      for (let i = 0; i < PER_CLIENT; i++) {
        const c = await firstReply(from);
        assert.match(c.raw, /^220 /);
        fillers.push(c.wire);
      }
    }
    // The listener is full; 127.0.0.43 holds PER_CLIENT - 1 after one of its connections closes, so it may connect once more.
    fillers.shift()?.close();
    const refill = await firstReply("127.0.0.44");
    // (.44 is at its own limit: refused by max_connections_per_client, at once.)
    assert.match(refill.raw, /^421 4\.7\.0 Too many connections from your address/);
    refill.wire.close();
    // Now fill the freed slot from a third client, so the listener is full again.
    const third = await firstReply("127.0.0.45");
    assert.match(third.raw, /^220 /);
    fillers.push(third.wire);
    // .43 holds connections in the full listener and none of the sessions is idle long enough to give way:
    // its first 5 refusals in the interval come at once (a client is not held for one refusal)...
    for (let i = 0; i < 5; i++) {
      const once = await firstReply("127.0.0.43");
      assert.match(once.raw, /^421 4\.7\.0 Too many connections, try again later/);
      assert.ok(once.ms < 1000, `refusal ${i + 1} after ${once.ms} ms`);
      once.wire.close();
    }
    // ...the next is held, then 421.
    const again = await firstReply("127.0.0.43");
    assert.match(again.raw, /^421 4\.7\.0 Too many connections, try again later/);
    assert.ok(again.ms >= 1900 && again.ms < 5000, `refused after ${again.ms} ms`);
    again.wire.close();
    // A client with no connection there is answered at once: a session idle for longer than 1 s gives way to it.
    const fresh = await firstReply("127.0.0.46");
    assert.match(fresh.raw, /^220 /);
    assert.ok(fresh.ms < 1000, `${fresh.ms} ms`);
    fresh.wire.close();
  } finally {
    for (const c of fillers) c.close();
  }
});
