/** Entry point of a worker thread (started by primary.ts with workerData { config, shard, ... }). */
import { workerData } from "node:worker_threads";
import { runWorker, type WorkerData } from "./worker.ts";

const data = workerData as WorkerData;
runWorker(data).catch((err: unknown) => {
  // Reaches the primary as the Worker's 'error' event.
  throw err instanceof Error ? err : new Error(String(err));
});
