import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger, LOG_BATCH_MS, logWritten } from "./index.ts";

function tempLog(): { file: string; done: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wardmail-log-"));
  return { file: path.join(dir, "log.jsonl"), done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function lines(file: string): Array<Record<string, unknown>> {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Counts the asynchronous writes sonic-boom makes (it calls fs.write / fs.writeSync of node:fs). */
function countWrites(): { count: () => number; restore: () => void } {
  const original = fs.write;
  let n = 0;
  (fs as { write: unknown }).write = (...args: unknown[]): unknown => {
    n++;
    return (original as (...a: unknown[]) => unknown)(...args);
  };
  return { count: () => n, restore: () => ((fs as { write: unknown }).write = original) };
}

test("a lone line is written within the batch deadline, without a flush", async () => {
  const { file, done } = tempLog();
  try {
    const logger = createLogger({ level: "info", destination: file });
    logger.info({ queueId: "abc" }, "message accepted");
    const deadline = Date.now() + 20 * LOG_BATCH_MS + 1000;
    while (lines(file).length === 0 && Date.now() < deadline) await sleep(5);
    assert.deepEqual(
      lines(file).map((l) => [l["msg"], l["queueId"]]),
      [["message accepted", "abc"]],
    );
  } finally {
    done();
  }
});

test("lines logged one by one over time go out in batches, every line once and in order; logWritten writes what waits", async () => {
  const { file, done } = tempLog();
  const writes = countWrites();
  try {
    const logger = createLogger({ level: "info", destination: file });
    // As in a busy server: a few lines each turn of the event loop, turns a millisecond apart
    // (line by line: two writes a turn, the first line's and then the rest's once it returns).
    const N = 300;
    for (let i = 0; i < N; i++) {
      logger.info({ i, pad: "x".repeat(150) }, "message accepted");
      if (i % 5 === 4) await sleep(1);
    }
    logger.info({ i: N }, "last"); // under LOG_BATCH_BYTES on its own
    await logWritten(logger, 5000);
    const got = lines(file);
    assert.equal(got.length, N + 1);
    assert.deepEqual(
      got.map((l) => l["i"]),
      Array.from({ length: N + 1 }, (_, i) => i),
    );
    // A write per LOG_BATCH_BYTES (~16 lines of ~250 bytes) or per LOG_BATCH_MS (two turns or more), whichever first.
    assert.ok(writes.count() <= N / 5, `${writes.count()} writes for ${N + 1} lines`);
  } finally {
    writes.restore();
    done();
  }
});

test("lines that never reach LOG_BATCH_BYTES are written one deadline after the first of them", async () => {
  const { file, done } = tempLog();
  try {
    const logger = createLogger({ level: "info", destination: file });
    for (let i = 0; i < 3; i++) logger.info({ i }, "small");
    await sleep(10 * LOG_BATCH_MS + 200);
    assert.equal(lines(file).length, 3);
    logger.info({ i: 3 }, "small"); // a new batch, a new deadline
    await sleep(10 * LOG_BATCH_MS + 200);
    assert.equal(lines(file).length, 4);
  } finally {
    done();
  }
});
