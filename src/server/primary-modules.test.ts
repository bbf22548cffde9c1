/**
 * What `wardmail serve` loads into the main thread before its workers start
 * (src/cli/main.ts, then src/server/index.ts): the main thread runs for the
 * server's whole life and keeps every module it loads, with its source and
 * compiled code, in its own V8 heap. It serves no SMTP session, so the
 * folders that only the session workers and task threads run must not be
 * among them (measured in docs/benchmarks.md, "Peak RSS with every check on:
 * where it goes (issue 12, `rss` branch, second round)").
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const SRC = new URL("../", import.meta.url);

/** Folders of src/ that the main thread has no use for. */
const WORKER_ONLY = ["protocol", "submission", "auth", "message", "sink", "policy", "mailauth", "outbound", "delivery", "qmgr", "e2e", "spam", "antivirus", "attachments", "dkim", "acme", "https", "metrics", "send", "audit"];

const SCRIPT = `
import module from "node:module";
const loaded = new Set();
module.registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context); } });
await import(process.argv[1] + "cli/main.ts");
await import(process.argv[1] + "server/index.ts");
console.log(JSON.stringify([...loaded]));
`;

test("the main thread of serve loads none of the session workers' folders", async () => {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", SCRIPT, SRC.href], { timeout: 30_000 });
  const loaded = (JSON.parse(stdout) as string[]).filter((u) => u.startsWith(SRC.href)).map((u) => u.slice(SRC.href.length));
  assert.ok(loaded.includes("server/primary.ts"), `the hook saw the server's modules: ${loaded.join(", ")}`);
  const folders = new Set(loaded.map((p) => p.split("/")[0]));
  const wrong = WORKER_ONLY.filter((f) => folders.has(f));
  assert.deepEqual(wrong, [], `loaded into the main thread: ${loaded.filter((p) => wrong.includes(p.split("/")[0]!)).join(", ")}`);
});
