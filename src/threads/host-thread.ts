/**
 * The entry of a PoolHostThread (shared.ts): one PoolHost, serving the
 * links whose ports the parent sends ({ type: "connect", port }). The pool
 * threads it starts are its own; they end with it.
 */
import { parentPort, type MessagePort } from "node:worker_threads";
import { PoolHost } from "./shared.ts";

const port = parentPort;
if (!port) throw new Error("host-thread.ts runs in a worker thread");
const host = new PoolHost();
port.on("message", (m: { readonly type?: unknown; readonly port?: MessagePort }) => {
  if (m.type === "connect" && m.port !== undefined) host.attach(m.port);
});
