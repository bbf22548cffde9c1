/**
 * A loopback server with one src/server Connection per client over a given
 * SessionHost, for unit tests of the connection adapter and the pipeline:
 * plain TCP, long timeouts, no error delay or pregreet pause.
 */
import net from "node:net";
import { DEFAULT_LIMITS } from "../../src/limits/index.ts";
import { Connection } from "../../src/server/connection.ts";
import type { SessionHost } from "../../src/server/host.ts";
import { captureLogger } from "./queue.ts";
import { sessionOptions } from "./transcript.ts";

export interface ConnectionServer {
  port: number;
  /** Connections the server still holds (its side of the socket not closed). */
  open: () => Promise<number>;
  close: () => Promise<void>;
}

export async function serveConnections(host: SessionHost, maxErrors = DEFAULT_LIMITS.max_errors): Promise<ConnectionServer> {
  const log = captureLogger().logger;
  const server = net.createServer((socket) => {
    new Connection(socket, {
      session: sessionOptions({ tls: "none", limits: { ...DEFAULT_LIMITS, max_errors: maxErrors } }),
      listener: "smtp",
      host,
      tls: undefined,
      idleTimeoutMs: 10_000,
      dataTimeoutMs: 10_000,
      handshakeTimeoutMs: 10_000,
      implicitTls: false,
      commandTimeoutMs: 10_000,
      sessionTimeoutMs: 20_000,
      stressTimeoutMs: 10_000,
      minDataRate: 1,
      errorDelayMs: 0,
      pregreetMs: 0,
      underPressure: () => false,
      trusted: false,
      logger: log,
      sessionId: "t1",
      onClose: () => undefined,
    }).start();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    open: () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
