// Loopback port helpers shared by integration tests and the benchmark.
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * The ports the kernel hands out for outgoing connections and for binds to
 * port 0 (net.ipv4.ip_local_port_range; Linux's default 32768-60999).
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return [low, high];
  } catch {
    /* not Linux: assume the default */
  }
  return [32768, 60999];
}

/** Below the ephemeral range, where neither outgoing connections nor port-0 binds land; undefined if it is too narrow. */
function quietRange(): [number, number] | undefined {
  const [low] = ephemeralRange();
  const from = Math.max(10_000, low - 12_000);
  return low - from >= 2_000 ? [from, low - 1] : undefined;
}

/** Binds host:port (0: any) exclusively and closes; resolves with the port, or undefined if it was in use. */
function tryPort(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", (err: NodeJS.ErrnoException) => (err.code === "EADDRINUSE" || err.code === "EACCES" ? resolve(undefined) : reject(err)));
    srv.listen({ port, host, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("freePort: listener has no TCP address"));
        return;
      }
      const bound = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(bound)));
    });
  });
}

/**
 * Returns a TCP port that was free on host a moment ago (bound and closed),
 * chosen at random below the kernel's ephemeral port range: the tests make
 * thousands of loopback connections, and a port from that range (what
 * binding port 0 gives) could be taken as the local port of one of them
 * before the caller binds it (a CI run failed once with EADDRINUSE on a
 * port that binding port 0 had given).
 * Another freePort caller may still pick the same port in that moment:
 * callers that start a server should retry on EADDRINUSE if that matters
 * to them. Falls back to port 0 where the range leaves no room below.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const range = quietRange();
  if (range !== undefined) {
    for (let tries = 0; tries < 50; tries++) {
      const port = await tryPort(host, range[0] + randomInt(range[1] - range[0] + 1));
      if (port !== undefined) return port;
    }
  }
  const port = await tryPort(host, 0);
  if (port === undefined) throw new Error(`freePort: no free port on ${host}`);
  return port;
}

/**
 * `n` ports that were free a moment ago, all different: one freed port may
 * be handed out again by the next bind (a server with two listeners on the
 * same port then refuses to start).
 */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n && tries < n * 20; tries++) ports.add(await freePort(host));
  if (ports.size < n) throw new Error(`freePorts: ${ports.size} distinct ports of ${n}`);
  return [...ports];
}

/** Tries one TCP connection; resolves true if it was accepted. */
export function canConnect(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on("error", () => undefined);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/**
 * Waits until host:port accepts a TCP connection. Rejects after timeoutMs.
 * `alive`, if given, is polled too: when it returns a string (a reason), the
 * wait stops at once with that reason (e.g. "process exited with code 1").
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  opts: { host?: string; alive?: () => string | undefined } = {},
): Promise<void> {
  const host = opts.host ?? "127.0.0.1";
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  while (true) {
    const dead = opts.alive?.();
    if (dead !== undefined) throw new Error(`waitForPort ${host}:${port}: ${dead}`);
    const left = deadline - Date.now();
    if (await canConnect(port, host, Math.max(50, Math.min(1000, left)))) return;
    if (Date.now() >= deadline) {
      throw new Error(`waitForPort ${host}:${port}: nothing accepted connections within ${timeoutMs} ms`);
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 250);
  }
}
