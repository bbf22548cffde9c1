/**
 * The encryption thread (worker_threads entry; offload.ts starts it): takes
 * { id, content, keys } (keys as stored: armored OpenPGP keys or PEM
 * certificates, checked at import and for their time by the caller),
 * answers { id, content } with the encrypted copy (its buffer transferred)
 * or { id, error }. Parsed keys are cached by their text (bounded).
 */
import { parentPort } from "node:worker_threads";
import { encryptForStore } from "./encrypt.ts";
import { loadStoredKey, type UsableKey } from "./keys.ts";

const MAX_CACHED = 200;
const cache = new Map<string, Promise<UsableKey>>();

function key(data: string): Promise<UsableKey> {
  let p = cache.get(data);
  if (p === undefined) {
    if (cache.size >= MAX_CACHED) cache.clear();
    p = loadStoredKey(data);
    p.catch(() => cache.delete(data));
    cache.set(data, p);
  }
  return p;
}

interface Task {
  readonly id: number;
  readonly content: Uint8Array;
  readonly keys: readonly string[];
}

const port = parentPort;
if (port === null) throw new Error("src/e2e/thread.ts runs as a worker thread");
port.on("message", (t: Task) => {
  void (async () => {
    try {
      const keys = await Promise.all(t.keys.map(key));
      const out = await encryptForStore(Buffer.from(t.content.buffer, t.content.byteOffset, t.content.byteLength), keys);
      // A fresh ArrayBuffer of exactly this copy, so transferring it moves nothing else.
      const copy = new Uint8Array(out);
      port.postMessage({ id: t.id, content: copy }, [copy.buffer]);
    } catch (err) {
      port.postMessage({ id: t.id, error: err instanceof Error ? err.message : String(err) });
    }
  })();
});
