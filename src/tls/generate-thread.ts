/**
 * The short-lived thread that makes a self-signed pair for ensureSelfSigned
 * (selfsigned.ts): asn1js and pkijs load here, not in the thread that asked
 * (the server's main thread, which would keep their code and objects, a few
 * MB of heap, for as long as it runs), and go away with this thread. It
 * answers once, { ok: true, certPem, keyPem } or { ok: false, message },
 * and ends.
 */
import { parentPort, workerData } from "node:worker_threads";
import { generateCertificate } from "./selfsigned.ts";

const { names } = workerData as { names: string[] };
generateCertificate(names).then(
  (g) => parentPort?.postMessage({ ok: true, certPem: g.certPem, keyPem: g.keyPem }),
  (err: unknown) => parentPort?.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) }),
);
