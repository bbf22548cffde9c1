/** Entry point of a worker process (forked by primary.ts): argv[2] is the config path, if any. */
import { runWorker } from "./worker.ts";

const shard = Number(process.env.WARDMAIL_SHARD ?? "0");
runWorker(process.argv[2], shard).catch((err: unknown) => {
  process.stderr.write(`wardmail worker ${shard}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
