/**
 * The built server (dist/, what `npm start` and the benchmark run) starts,
 * is one process whose workers are threads, accepts and delivers a message,
 * and stops cleanly on SIGTERM. `npm test` builds dist/ before the tests.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { DIST_BIN, startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { sendOneMessage } from "./peers/smtp-client.ts";

let w: Wardmail;

before(async () => {
  assert.ok(existsSync(DIST_BIN), `${DIST_BIN} is missing: run "npm run build" (npm test does)`);
  w = await startWardmail({ dist: true, workers: 2 });
});

after(async () => {
  await w.stop();
  await w.cleanup();
});

test("the built server accepts and delivers a message", async () => {
  const replies = await sendOneMessage({ port: w.smtpPort, from: "a@sender.test", to: ["user@example.test"], body: "Subject: dist\r\n\r\nbuilt\r\n" });
  assert.match(replies.at(-2)?.raw ?? replies.map((r) => r.raw).join(""), /queued as/);
  const files = await w.waitForMail("user@example.test", 1);
  assert.equal(files.length, 1);
  assert.match(readFileSync(files[0] as string, "utf8"), /\r\n\r\nbuilt\r\n$/);
});

test("workers are threads of one process (no child processes)", () => {
  const pid = w.process.pid as number;
  const children = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]?.split(" ")[1] === String(pid);
      } catch {
        return false;
      }
    });
  assert.deepEqual(children, []);
  // main thread + 2 workers + libuv/V8 helper threads
  assert.ok(readdirSync(`/proc/${pid}/task`).length >= 3);
});

test("SIGTERM stops it with exit code 0", async () => {
  assert.equal(await w.stop(), 0);
});
