/**
 * The Prometheus endpoint ([metrics] listen) of a real Wardmail with two
 * worker threads: after mail sent with swaks (accepted, refused as a mail
 * loop, an unknown recipient, a failed AUTH, one submitted for another
 * domain and relayed to Postfix's smtp-sink), a scrape shows the
 * counts added up over both workers, deliveries, the queue, memory and event
 * loop delay; `promtool check metrics` (Prometheus's own linter) accepts
 * the text. A message kept deferred (its relay's port is closed) shows in
 * wardmail_queue_oldest_seconds, growing between scrapes. Other paths answer 404.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { canConnect, freePort } from "./peers/ports.ts";
import { spawnDaemon, waitReady, type Daemon } from "./peers/daemon.ts";
import { exec } from "./peers/exec.ts";

const SMTP_SINK = "/usr/sbin/smtp-sink";
const SKIP = peerSkip(
  binaryMissing("swaks", ["--version"], "swaks"),
  existsSync(SMTP_SINK) ? undefined : `${SMTP_SINK} is missing: install the Debian package postfix`,
  binaryMissing("promtool", ["--version"], "prometheus"),
);
let w: Wardmail | undefined;
let metricsPort = 0;
let sink: Daemon | undefined;
/** A port nobody listens on: the relay of stuck.example, so mail for it stays deferred. */
let closedPort = 0;

before(async () => {
  if (SKIP !== false) return;
  metricsPort = await freePort();
  // Postfix's smtp-sink: the relay outbound mail goes to (it accepts everything, no STARTTLS).
  const sinkPort = await freePort();
  sink = spawnDaemon(SMTP_SINK, [...(process.getuid?.() === 0 ? ["-u", "nobody"] : []), `127.0.0.1:${sinkPort}`, "10"], await mkdtemp(join(tmpdir(), "wardmail-sink-")));
  assert.ok(await waitReady(sink, 10_000, () => canConnect(sinkPort)), sink.log());
  closedPort = await freePort();
  w = await startWardmail({
    workers: 2,
    extra: `[metrics]\nlisten = ["127.0.0.1:${metricsPort}"]\n[auth]\nfailure_delay = 0\n[[outbound.relays]]\ndomains = ["stuck.example"]\nhost = "127.0.0.1:${closedPort}"\ntls = "may"\n[[outbound.relays]]\ndomains = ["*"]\nhost = "127.0.0.1:${sinkPort}"\ntls = "may"\n`,
  });
  const r = await w.cli(["user", "add", "user@example.test", "--password-stdin", "--config", w.configPath], "a good long password\n");
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await sink?.stop();
  if (!w) return;
  await w.stop();
  await w.cleanup();
});

/** Parses the exposition text into "name{labels}" → value (labels as printed). */
function parse(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}

async function scrape(path = "/metrics"): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

function swaks(args: string[]): Promise<string> {
  assert.ok(w);
  return exec("swaks", ["--server", `127.0.0.1:${w.smtpPort}`, "--from", "sender@remote.test", "--helo", "client.remote.test", ...args], { timeoutMs: 20_000 }).then((r) => r.out);
}

test("a scrape after sending mail counts connections, messages by result and reason, AUTH failures, deliveries and the queue; promtool accepts it", { skip: SKIP }, async () => {
  assert.ok(w);
  const before = parse((await scrape()).body);
  assert.equal(before.get('wardmail_messages_total{listener="smtp",reason="250 2.0.0",result="accepted"}'), undefined);
  // Three accepted messages (separate connections: spread over the two workers), one refused, one unknown recipient.
  for (let i = 0; i < 3; i++) assert.match(await swaks(["--to", "user@example.test", "--data", `From: <sender@remote.test>\r\nSubject: m${i}\r\n\r\nbody ${i}\r\n`]), /250 2\.0\.0 Ok: queued/);
  // A mail loop (more than 50 Received fields): 554 5.4.6 at the end of DATA.
  const loop = join(w.dir, "loop.eml");
  await writeFile(loop, `${"Received: from a.example by b.example; Mon, 7 Dec 2026 08:00:00 +0000\r\n".repeat(51)}From: <sender@remote.test>\r\nSubject: loop\r\n\r\nbody\r\n`);
  assert.match(await swaks(["--to", "user@example.test", "--data", `@${loop}`]), /<\*\* 554 5\.4\.6/);
  assert.match(await swaks(["--to", "nobody-here@example.test", "--quit-after", "RCPT"]), /<\*\* 550 /);
  // A failed AUTH on submission (STARTTLS, wrong password).
  const auth = await exec("swaks", ["--server", `127.0.0.1:${w.submissionPort}`, "-tls", "--auth", "PLAIN", "--auth-user", "user@example.test", "--auth-password", "wrong password", "--quit-after", "AUTH"], { timeoutMs: 20_000 });
  assert.match(auth.out, /535 5\.7\.8/);
  // One message submitted for another domain: delivered through the relay (smtp-sink), one outbound session without TLS.
  const sent = await exec("swaks", ["--server", `127.0.0.1:${w.submissionPort}`, "-tls", "--auth", "PLAIN", "--auth-user", "user@example.test", "--auth-password", "a good long password", "--from", "user@example.test", "--to", "someone@remote.example", "--data", "From: <user@example.test>\r\nSubject: out\r\n\r\nbody\r\n"], { timeoutMs: 20_000 });
  assert.match(sent.out, /250 2\.0\.0 Ok: queued/);
  assert.equal((await w.waitForMail("user@example.test", 3)).length, 3);

  // Deliveries are counted right after the Maildir write, and their outcomes reach the spool (which the queue gauges read)
  // within spool_outcome_delay (20 ms) of it: allow a moment.
  let m = parse((await scrape()).body);
  const settled = (): boolean =>
    (m.get('wardmail_deliveries_total{destination="local",outcome="delivered"}') ?? 0) >= 3 &&
    (m.get('wardmail_deliveries_total{destination="remote",outcome="delivered"}') ?? 0) >= 1 &&
    m.get('wardmail_queue_messages{state="queued"}') === 0;
  for (let i = 0; i < 100 && !settled(); i++) {
    await new Promise((r) => setTimeout(r, 100));
    m = parse((await scrape()).body);
  }
  const { status, type, body } = await scrape();
  assert.equal(status, 200);
  assert.match(type ?? "", /^text\/plain; version=0\.0\.4/);
  m = parse(body);
  assert.equal(m.get("wardmail_workers"), 2);
  assert.equal(m.get('wardmail_messages_total{listener="smtp",reason="250 2.0.0",result="accepted"}'), 3);
  assert.equal(m.get('wardmail_messages_total{listener="smtp",reason="554 5.4.6",result="refused"}'), 1, body);
  assert.equal(m.get('wardmail_smtp_refusals_total{command="rcpt",listener="smtp",reason="550 5.1.1"}'), 1, body);
  assert.equal(m.get('wardmail_auth_total{listener="submission",result="failed"}'), 1, body);
  assert.equal(m.get('wardmail_deliveries_total{destination="local",outcome="delivered"}'), 3, body);
  assert.ok((m.get('wardmail_connections_total{listener="smtp"}') ?? 0) >= 5, body);
  assert.equal(m.get('wardmail_connections_total{listener="submission"}'), 2, body);
  assert.equal(m.get('wardmail_auth_total{listener="submission",result="ok"}'), 1, body);
  assert.equal(m.get('wardmail_messages_total{listener="submission",reason="250 2.0.0",result="accepted"}'), 1, body);
  assert.equal(m.get('wardmail_deliveries_total{destination="remote",outcome="delivered"}'), 1, body);
  // Latency from acceptance to delivery: a histogram per destination.
  assert.equal(m.get('wardmail_delivery_delay_seconds_count{destination="local"}'), 3, body);
  assert.equal(m.get('wardmail_delivery_delay_seconds_bucket{destination="local",le="+Inf"}'), 3, body);
  assert.equal(m.get('wardmail_delivery_delay_seconds_bucket{destination="remote",le="86400"}'), 1, body);
  assert.ok((m.get('wardmail_delivery_delay_seconds_sum{destination="local"}') ?? -1) >= 0);
  assert.equal(m.get('wardmail_outbound_sessions_total{policy="may",result="ok",source="relay",tls="none"}'), 1, body);
  assert.equal(m.get('wardmail_queue_messages{state="queued"}'), 0);
  assert.equal(m.get('wardmail_queue_messages{state="deferred"}'), 0);
  for (const state of ["queued", "deferred", "held"]) assert.equal(m.get(`wardmail_queue_oldest_seconds{state="${state}"}`), 0, body);
  assert.ok((m.get("wardmail_resident_memory_bytes") ?? 0) > 10_000_000);
  for (const thread of ["primary", "worker 0", "worker 1"]) {
    assert.ok(m.has(`wardmail_event_loop_delay_seconds{stat="p99",thread="${thread}"}`), `${thread}: ${body}`);
    assert.ok((m.get(`wardmail_heap_used_bytes{thread="${thread}"}`) ?? 0) > 0);
  }
  const lint = await exec("promtool", ["check", "metrics"], { input: body, timeoutMs: 20_000 });
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.out}\n${body}`);
});

test("wardmail_queue_oldest_seconds: the age of a message kept deferred (its relay's port is closed) grows between scrapes", { skip: SKIP }, async () => {
  assert.ok(w);
  const sent = await exec("swaks", ["--server", `127.0.0.1:${w.submissionPort}`, "-tls", "--auth", "PLAIN", "--auth-user", "user@example.test", "--auth-password", "a good long password", "--from", "user@example.test", "--to", "someone@stuck.example", "--data", "From: <user@example.test>\r\nSubject: stuck\r\n\r\nbody\r\n"], { timeoutMs: 20_000 });
  assert.match(sent.out, /250 2\.0\.0 Ok: queued/);
  // The first attempt is refused at once (connection refused): the message is deferred.
  let body = (await scrape()).body;
  for (let i = 0; i < 100 && parse(body).get('wardmail_queue_messages{state="deferred"}') !== 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    body = (await scrape()).body;
  }
  const first = parse(body);
  assert.equal(first.get('wardmail_queue_messages{state="deferred"}'), 1, body);
  const age1 = first.get('wardmail_queue_oldest_seconds{state="deferred"}') ?? -1;
  assert.ok(age1 > 0 && age1 < 60, body);
  assert.equal(first.get('wardmail_queue_oldest_seconds{state="held"}'), 0, body);
  await new Promise((r) => setTimeout(r, 1100));
  const { body: later } = await scrape();
  const second = parse(later);
  assert.equal(second.get('wardmail_queue_messages{state="deferred"}'), 1, later);
  // One message in one shard: the primary takes the largest over the two workers (the other says 0), not a sum.
  const age2 = second.get('wardmail_queue_oldest_seconds{state="deferred"}') ?? -1;
  assert.ok(age2 >= age1 + 1 && age2 < age1 + 30, `${age1} -> ${age2}`);
  assert.match(later, /^# TYPE wardmail_queue_oldest_seconds gauge$/m);
  const lint = await exec("promtool", ["check", "metrics"], { input: later, timeoutMs: 20_000 });
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.out}\n${later}`);
});

test("only GET /metrics: other paths 404, other methods 405", { skip: SKIP }, async () => {
  assert.equal((await scrape("/")).status, 404);
  assert.equal((await scrape("/metrics/../etc")).status, 404);
  const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST", body: "x", signal: AbortSignal.timeout(10_000) });
  assert.equal(post.status, 405);
});
