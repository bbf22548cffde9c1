/** Public face of the server: the process model and the socket adapters. */
export { runPrimary, workerCount, type PrimaryOptions } from "./primary.ts";
export { runWorker, type WorkerReady, type WorkerData } from "./worker.ts";
export { dropPrivileges, chownTo, willDrop } from "./privileges.ts";
export { serverIds } from "./privileges.ts";
export { SmtpServer, type BoundListener, type Role } from "./listeners.ts";
export { Connection, type SessionHost, type ConnectionInfo, type HostAnswer } from "./connection.ts";
export { Receiver } from "./receiver.ts";
export { LocalRecipients } from "./recipients.ts";
