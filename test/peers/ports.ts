// Loopback port helpers shared by integration tests and the benchmark.
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago: binds port 0,
 * reads the port the kernel chose, closes. Another process may still take it
 * before the caller binds it; callers that start a server should retry on
 * EADDRINUSE if that matters to them.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("freePort: listener has no TCP address"));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
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
