/**
 * Public face of the server: the process model and the socket adapters.
 *
 * The values exported here are the primary's (and the CLI's) only: the
 * worker's modules (sessions, receiver, checks and their libraries) are
 * loaded by the worker threads alone (worker-main.ts), so the primary
 * process does not carry them. The rest is exported as types.
 */
export { runPrimary, workerCount, type PrimaryOptions } from "./primary.ts";
export type { WorkerReady, WorkerData } from "./worker.ts";
export { dropPrivileges, chownTo, willDrop } from "./privileges.ts";
export { serverIds } from "./privileges.ts";
export type { BoundListener, Role } from "./listeners.ts";
export type { SessionHost, ConnectionInfo, HostAnswer } from "./connection.ts";
