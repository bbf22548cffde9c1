// The per-client table: keys (IPv4 address, IPv6 prefix), open connections
// and rates per group, bans and passes, a full table failing open, and the
// counts staying exact when several worker threads count at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { ClientTable } from "./clients.ts";

const table = (slots = 4096, prefix = 64): ClientTable => new ClientTable(ClientTable.allocate(slots), prefix);

test("open connections per client and group; release frees them", () => {
  const t = table();
  for (let i = 0; i < 3; i++) assert.equal(t.connect("192.0.2.1", "mx", 3, 1000, true), "ok");
  assert.equal(t.connect("192.0.2.1", "mx", 3, 1000, true), "concurrency");
  assert.equal(t.connect("::ffff:192.0.2.1", "mx", 3, 1000, true), "concurrency"); // the same client, IPv4-mapped
  assert.equal(t.connect("192.0.2.1", "submission", 3, 1000, true), "ok"); // counted apart
  assert.equal(t.connect("192.0.2.2", "mx", 3, 1000, true), "ok");
  t.release("192.0.2.1", "mx");
  assert.equal(t.open("192.0.2.1", "mx"), 2);
  assert.equal(t.connect("192.0.2.1", "mx", 3, 1000, true), "ok");
});

test("IPv6 clients are counted per prefix", () => {
  const t = table(4096, 64);
  assert.equal(t.connect("2001:db8:1:2::1", "mx", 2, 1000, true), "ok");
  assert.equal(t.connect("2001:db8:1:2:ffff::9", "mx", 2, 1000, true), "ok");
  assert.equal(t.connect("2001:db8:1:2:abcd::", "mx", 2, 1000, true), "concurrency"); // same /64
  assert.equal(t.connect("2001:db8:1:3::1", "mx", 2, 1000, true), "ok"); // next /64
  const t48 = table(4096, 48);
  assert.equal(t48.connect("2001:db8:1:2::1", "mx", 1, 1000, true), "ok");
  assert.equal(t48.connect("2001:db8:1:3::1", "mx", 1, 1000, true), "concurrency"); // same /48
  assert.equal(t48.connect("2001:db8:2::1", "mx", 1, 1000, true), "ok");
});

test("keys stay right when asked again and again, interleaved, past the key cache's size", () => {
  const t = table(1 << 17, 64);
  const ips = (round: number): string[] => {
    const out: string[] = [];
    for (let i = 0; i < 5000; i++) out.push(i % 2 === 0 ? `10.${(i >> 8) & 255}.${i & 255}.${round}` : `2001:db8:${i.toString(16)}::${round + 1}`);
    return out;
  };
  // Two rounds: the IPv4 addresses differ per round, the IPv6 ones share their /64.
  for (const round of [1, 2]) for (const ip of ips(round)) assert.equal(t.connect(ip, "mx", 2, 1000, true), "ok", ip);
  for (const ip of ips(3)) {
    const v6 = ip.includes(":");
    assert.equal(t.open(ip, "mx"), v6 ? 2 : 0, ip);
    assert.equal(t.connect(ip, "mx", 2, 1000, true), v6 ? "concurrency" : "ok", ip);
  }
  assert.equal(t.open("10.0.0.1", "mx"), 1);
  assert.equal(t.open("::ffff:10.0.0.1", "mx"), 1);
  assert.equal(t.open("not an address", "mx"), 0);
  assert.equal(t.connect("not an address", "mx", 0, 0, true), "ok"); // no key: not counted
  assert.equal(t.untracked, 0, "every client found a slot");
});

test("connection, message and recipient rates per minute", () => {
  const t = table();
  for (let i = 0; i < 5; i++) {
    assert.equal(t.connect("198.51.100.7", "mx", 100, 5, true), "ok");
    t.release("198.51.100.7", "mx");
  }
  assert.equal(t.connect("198.51.100.7", "mx", 100, 5, true), "rate");
  assert.equal(t.connect("198.51.100.7", "submission", 100, 5, true), "ok");
  for (let i = 0; i < 3; i++) assert.equal(t.take("198.51.100.7", "messages", 3), true);
  assert.equal(t.take("198.51.100.7", "messages", 3), false);
  assert.equal(t.take("198.51.100.7", "recipients", 3), true);
});

test("an early talker is banned from the MX group only; a pass is remembered", () => {
  const t = table();
  t.ban("203.0.113.5", 60);
  assert.equal(t.connect("203.0.113.5", "mx", 10, 100, true), "banned");
  assert.equal(t.connect("203.0.113.5", "submission", 10, 100, false), "ok");
  assert.equal(t.passed("203.0.113.6"), false);
  t.pass("203.0.113.6", 60);
  assert.equal(t.passed("203.0.113.6"), true);
});

test("a slow client is refused with refuseSlow while its mark lasts, per client; without refuseSlow it connects as any client", () => {
  const t = table();
  assert.equal(t.connect("198.51.100.7", "mx", 10, 100, true, true), "ok");
  t.markSlow("198.51.100.7", 60);
  assert.equal(t.connect("198.51.100.7", "mx", 10, 100, true, true), "slow");
  assert.equal(t.connect("::ffff:198.51.100.7", "submission", 10, 100, false, true), "slow"); // the same client, either group
  assert.equal(t.connect("198.51.100.8", "mx", 10, 100, true, true), "ok");
  // Refused as slow: not counted (open connections, rate).
  assert.equal(t.open("198.51.100.7", "mx"), 1);
  assert.equal(t.connect("198.51.100.7", "mx", 10, 100, true), "ok"); // no pressure: served
  assert.equal(t.open("198.51.100.7", "mx"), 2);
  t.markSlow("198.51.100.9", 0); // remembered until now: already over
  assert.equal(t.connect("198.51.100.9", "mx", 10, 100, true, true), "ok");
});

test("a full table fails open: a client it cannot hold is not counted", () => {
  const t = table(8);
  for (let i = 1; i <= 8; i++) assert.equal(t.connect(`10.0.0.${i}`, "mx", 1, 100, true), "ok");
  // Every slot holds an open connection: the ninth client is let through, uncounted.
  assert.equal(t.untracked, 0);
  assert.equal(t.connect("10.0.0.9", "mx", 1, 100, true), "ok");
  assert.equal(t.connect("10.0.0.9", "mx", 1, 100, true), "ok");
  assert.equal(t.untracked, 2); // the listener logs "client table full"
  assert.equal(t.connect("10.0.0.1", "mx", 1, 100, true), "concurrency");
});

test("four threads counting at once leave exact counts", async () => {
  const sab = ClientTable.allocate(4096);
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(workerData.url).then(({ ClientTable }) => {
      const t = new ClientTable(workerData.sab, 64);
      let ok = 0;
      for (let i = 0; i < 20000; i++) {
        const ip = "192.0.2." + (i % 50);
        if (t.connect(ip, "mx", 1e9, 1e9, true) === "ok") ok++;
        if (i % 2 === 0) t.release(ip, "mx");
      }
      parentPort.postMessage(ok);
    });`;
  const url = new URL("./clients.ts", import.meta.url).href;
  const oks = await Promise.all(
    Array.from({ length: 4 }, () => new Promise<number>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { sab, url } });
      w.once("message", (m: number) => resolve(m));
      w.once("error", reject);
    })),
  );
  assert.deepEqual(oks, [20000, 20000, 20000, 20000]);
  const t = new ClientTable(sab, 64);
  let open = 0;
  for (let i = 0; i < 50; i++) open += t.open(`192.0.2.${i}`, "mx");
  assert.equal(open, 4 * 10000); // each thread released half of what it opened
});
