/**
 * Cost per message of encrypt-on-store (src/e2e encryptForStore), not a
 * test: a timed loop per key type and message size, in this process, with
 * keys made at start (OpenPGP.js keys; an X.509 certificate from `openssl
 * req`). For scale, the same loop measures the Maildir write of the plain
 * message (write, fsync file and directory) that every delivery pays anyway.
 *
 * Reports per message: median and p95 wall time, throughput in MB/s of
 * plaintext, the stored size relative to the original, and the longest
 * event-loop pause during the loop: in place, the encryption pauses the
 * delivery worker's event loop (its SMTP sessions) that long; above 64 KiB
 * the server encrypts in its encryption thread (src/e2e/offload.ts), whose
 * rows show what is left on the event loop.
 *
 * Run: node bench/encrypt-store.ts [--quick]   (bounded: about 4 s per row, 1.5 s with --quick)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as openpgp from "openpgp";
import { EncryptionThread, encryptForStore, parseRecipientKey, type UsableKey } from "../src/e2e/index.ts";
import { deliverToMaildir } from "../src/delivery/index.ts";
import { sampleMessage } from "../test/helpers/queue.ts";

const quick = process.argv.includes("--quick");
const ADDR = "user@example.test";
const dir = mkdtempSync(join(tmpdir(), "wardmail-bench-e2e-"));

async function pgp(type: "rsa" | "curve25519"): Promise<UsableKey> {
  const k = await openpgp.generateKey({ type, ...(type === "rsa" ? { rsaBits: 3072 } : {}), userIDs: [{ email: ADDR }], format: "armored" });
  return parseRecipientKey(k.publicKey, [ADDR]);
}

function x509(): Promise<UsableKey> {
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "2", "-subj", "/CN=bench", "-addext", `subjectAltName=email:${ADDR}`], { stdio: "ignore" });
  return parseRecipientKey(readFileSync(join(dir, "c.pem")), [ADDR]);
}

interface Row {
  what: string;
  size: number;
  n: number;
  median: number;
  p95: number;
  max: number;
  mbps: number;
  growth: number;
  /** Longest event-loop pause seen during the loop (the largest gap between the ticks of a 1 ms interval, minus 1 ms). */
  pause: number;
}

async function measure(what: string, size: number, fn: (raw: Buffer) => Promise<number>): Promise<Row> {
  const raw = sampleMessage({ size }).content;
  const budgetMs = quick ? 1500 : 4000;
  const maxN = size >= 1_000_000 ? 30 : 300;
  await fn(raw); // warm-up
  let last = performance.now();
  let pause = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    pause = Math.max(pause, now - last - 1);
    last = now;
  }, 1);
  const times: number[] = [];
  let out = 0;
  const start = performance.now();
  while (times.length < maxN && performance.now() - start < budgetMs) {
    const t0 = performance.now();
    out = await fn(raw);
    times.push(performance.now() - t0);
    // Let the ticker run between messages, as a server's other work would.
    await new Promise((r) => setTimeout(r, 2));
  }
  clearInterval(ticker);
  times.sort((a, b) => a - b);
  const pick = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  const total = times.reduce((a, b) => a + b, 0);
  return { what, size: raw.length, n: times.length, median: pick(0.5), p95: pick(0.95), max: times[times.length - 1] ?? 0, mbps: (raw.length * times.length) / 1e6 / (total / 1000), growth: out / raw.length, pause };
}

const keys: [string, UsableKey][] = [
  ["PGP/MIME, OpenPGP RSA 3072", await pgp("rsa")],
  ["PGP/MIME, OpenPGP Curve25519", await pgp("curve25519")],
  ["S/MIME, X.509 RSA 3072", await x509()],
];
const sizes = quick ? [4096, 102_400] : [4096, 102_400, 1_048_576, 10_485_760];
const rows: Row[] = [];
const thread = new EncryptionThread();
for (const size of sizes) {
  let i = 0;
  rows.push(
    await measure("Maildir write, plain (fsync)", size, async (raw) => {
      const r = await deliverToMaildir(join(dir, `md${i++ % 4}`), { returnPath: "a@b.test", deliveredTo: ADDR, content: raw });
      rmSync(r.path);
      return r.size;
    }),
  );
  for (const [what, key] of keys) rows.push(await measure(what, size, async (raw) => (await encryptForStore(raw, [key])).length));
  if (size > 65_536) for (const [what, key] of keys) rows.push(await measure(`${what}, in the encryption thread`, size, async (raw) => (await thread.encrypt(raw, [key])).length));
}
thread.close();
rmSync(dir, { recursive: true, force: true });

const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
console.log("| what | message bytes | n | median ms | p95 ms | max ms | MB/s | stored/original | longest event-loop pause ms |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) console.log(`| ${r.what} | ${r.size} | ${r.n} | ${fmt(r.median)} | ${fmt(r.p95)} | ${fmt(r.max)} | ${r.mbps.toFixed(1)} | ${r.growth.toFixed(2)} | ${fmt(r.pause)} |`);
