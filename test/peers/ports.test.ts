// freePort picks ports outside the kernel's ephemeral range, which loopback connections and port-0 binds use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { freePort, freePorts } from "./ports.ts";

const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);

// freePort falls back to port 0 when the range starts below 12,000 (no room for 2,000 ports above 10,000 under it).
test("freePort: a port below net.ipv4.ip_local_port_range that a server can bind at once", { skip: low < 12_000 ? `the ephemeral range starts at ${low}: freePort uses port 0 here` : false }, async () => {
  const ports = await freePorts(20);
  for (const p of ports) assert.ok(p >= 1024 && p < low, `port ${p} is outside the ephemeral range (from ${low})`);
  const port = await freePort();
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, resolve);
  });
  await new Promise<void>((resolve) => srv.close(() => resolve()));
});
