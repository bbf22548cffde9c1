/**
 * What the launcher and runPrimary rely on (bin/wardmail, primary.ts): V8's
 * --max-semi-space-size applies to every isolate made while it is set, over
 * a Worker's resourceLimits; cleared with v8.setFlagsFromString before the
 * first Worker, the main thread keeps its small young generation and each
 * Worker gets the one of its resourceLimits. Node documents changing flags
 * after start-up as undefined behaviour, so this pins the behaviour of the
 * Node the project ships: a Node that changes it fails here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { TaskThread, YOUNG_GENERATION_MB as TASK_YOUNG_GENERATION_MB } from "../threads/index.ts";

const run = promisify(execFile);
/** The launcher's value (bin/wardmail): the main thread's semi-space in MB, its young generation twice that. */
const LAUNCHER_SEMI_SPACE = Number(/--max-semi-space-size=(\d+)/.exec(readFileSync(new URL("../../bin/wardmail", import.meta.url), "utf8"))?.[1]);

const SCRIPT = `
import v8 from "node:v8";
import { Worker } from "node:worker_threads";
const churn = "let keep = []; for (let i = 0; i < 1e6; i++) { keep.push({ a: i, b: 'x' + i }); if (keep.length > 20000) keep = []; }";
const newSpace = "(await import('node:v8')).default.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size";
eval(churn);
const main = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size;
if (process.argv.includes("--clear")) v8.setFlagsFromString("--max-semi-space-size=0");
const young = Number(process.argv[process.argv.indexOf("--young") + 1]);
const w = new Worker(churn + "; const { parentPort } = await import('node:worker_threads'); parentPort.postMessage(" + newSpace + ");", { eval: true, resourceLimits: { maxYoungGenerationSizeMb: young } });
const [worker] = await Promise.all([new Promise((r) => w.once("message", r)), new Promise((r) => w.once("exit", r))]);
console.log(JSON.stringify({ main: main / 1048576, worker: worker / 1048576 }));
`;

async function measure(clear: boolean, young = 8): Promise<{ main: number; worker: number }> {
  const { stdout } = await run(process.execPath, [`--max-semi-space-size=${LAUNCHER_SEMI_SPACE}`, "--input-type=module", "-e", SCRIPT, "--", "--young", String(young), ...(clear ? ["--clear"] : [])], { timeout: 30_000 });
  return JSON.parse(stdout) as { main: number; worker: number };
}

test("the launcher's --max-semi-space-size bounds the main thread; cleared before a Worker, the Worker gets its resourceLimits' young generation", async () => {
  assert.ok(LAUNCHER_SEMI_SPACE >= 1 && LAUNCHER_SEMI_SPACE <= 2, `bin/wardmail's --max-semi-space-size (${LAUNCHER_SEMI_SPACE})`);
  // A flag-bounded new space reads 2 x the semi-space when quiet, but up to 4.75 MB on a loaded machine (seen in CI with a
  // 1 MB semi-space); unbounded, the same churn reads 32 MB. Under the Worker's own 8 MB tells the two apart.
  const bounded = 8;
  const cleared = await measure(true);
  assert.ok(cleared.main < bounded, `main thread new space ${cleared.main} MB`);
  assert.equal(cleared.worker, 8, "the Worker's own 8 MB");
  const kept = await measure(false);
  assert.ok(kept.worker < bounded, `without clearing, the flag overrides the Worker's limit (${kept.worker} MB)`);
});

test("a task thread (the verifier) gets the 4 MB young generation of src/threads, half a session worker's", async () => {
  // 4 MB keeps about 5 MiB less of the verifier resident at the stack bench's peak (docs/benchmarks.md, "Peak RSS under 200 MB").
  assert.equal(TASK_YOUNG_GENERATION_MB, 4);
  const task = await measure(true, TASK_YOUNG_GENERATION_MB);
  assertFourMb(task.worker);
});

/**
 * A 4 MB young generation's new space reads 4 MB on a quiet machine but 4.25 to 5.75 MB on a loaded one (seen in CI and
 * beside other work: its semi-spaces are not whole pages); an 8 MB one reads exactly 8, an unbounded one 32. At least 4
 * and under 8 tells it apart from both.
 */
function assertFourMb(mb: number): void {
  assert.ok(mb >= TASK_YOUNG_GENERATION_MB && mb < 8, `the task thread's new space (${mb} MB) is the 4 MB young generation's, not a session worker's 8 MB or an unbounded 32`);
}

test("a TaskThread is started with that young generation (src/threads passes YOUNG_GENERATION_MB in its resource limits)", async () => {
  // An entry that churns, then answers its new space in MB (this test process has no semi-space flag of its own).
  const code = `import v8 from "node:v8"; import { parentPort } from "node:worker_threads";
parentPort.on("message", (m) => { let keep = []; for (let i = 0; i < 1e6; i++) { keep.push({ a: i, b: "x" + i }); if (keep.length > 20000) keep = []; }
parentPort.postMessage({ type: "done", id: m.id, result: v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 1048576 }); });`;
  const thread = new TaskThread<{ readonly n: number }, number>({ entry: new URL(`data:text/javascript,${encodeURIComponent(code)}`), heapMb: 64, what: "young generation" });
  try {
    assertFourMb(await thread.run({ n: 1 }, AbortSignal.timeout(20_000)));
  } finally {
    thread.close();
  }
});
