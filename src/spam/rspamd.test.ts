// rspamd's answer is checked field by field; the score header is bounded and folded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAnswer, RspamdError, scoreHeader } from "./index.ts";
import { parseConfig, ConfigError } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { TransactionState } from "../policy/index.ts";

test("parseAnswer keeps action, score, threshold and symbols (highest score first)", () => {
  const r = parseAnswer(JSON.stringify({ is_skipped: false, score: 7.5, required_score: 15, action: "add header", symbols: { B: { score: 1 }, A: { score: 6.5 }, "bad name!": { score: 9 } } }));
  assert.deepEqual(r, { action: "add header", score: 7.5, required: 15, symbols: ["A", "B"], skipped: false });
});

test("parseAnswer refuses what is not an rspamd answer", () => {
  for (const text of ["", "not json", "[]", "null", '{"error":"bad"}', '{"action":"delete all","score":1,"required_score":2}', '{"action":"reject","score":"high","required_score":2}', '{"action":"reject"}']) {
    assert.throws(() => parseAnswer(text), RspamdError, text);
  }
});

test("scoreHeader folds long symbol lists at commas, lines under 80 characters", () => {
  const symbols = Array.from({ length: 50 }, (_, i) => `SYMBOL_NUMBER_${i}`);
  const h = scoreHeader({ action: "reject", score: 20, required: 15, symbols, skipped: false });
  assert.match(h, /^X-Wardmail-Spam: score=20\.00 required=15\.00 action="reject"\r\n\tsymbols=SYMBOL_NUMBER_0,/);
  for (const line of h.split("\r\n")) assert.ok(line.length < 80, line);
  assert.equal(h.replace(/\r\n\t/g, "").match(/SYMBOL_NUMBER_/g)?.length, 50);
  assert.equal(scoreHeader({ action: "no action", score: 0, required: 15, symbols: [], skipped: false }), 'X-Wardmail-Spam: score=0.00 required=15.00 action="no action"');
});

test("[spam] rspamd: an http:// address, normalised; anything else is named", () => {
  const parse = (src: string) => parseConfig(src, { file: "/etc/wardmail/w.toml", env: {}, cwd: "/srv/wm" });
  assert.equal(parse('[spam]\nrspamd = "http://127.0.0.1:11333/"\n').spam.rspamd, "http://127.0.0.1:11333");
  assert.equal(parse('[spam]\nrspamd = "http://[::1]:11333"\n').spam.rspamd, "http://[::1]:11333");
  assert.equal(parse("").spam.rspamd, "");
  for (const [v, why] of [["https://127.0.0.1:11333", /plain HTTP/], ["http://u:p@127.0.0.1:11333", /user name or password/], ["http://127.0.0.1:11333/checkv2", /path/], ["127.0.0.1:11333", /http:\/\//]] as const) {
    assert.throws(() => parse(`[spam]\nrspamd = "${v}"\n`), (e: unknown) => e instanceof ConfigError && e.issues[0]?.key === "spam.rspamd" && why.test(e.issues[0].message), v);
  }
  assert.throws(() => parse('[checks]\ntimeout = 5\n[spam]\nrspamd = "http://127.0.0.1:11333"\ntimeout = 5\n'), (e: unknown) => e instanceof ConfigError && e.issues[0]?.key === "spam.timeout");
});

test("rspamd unreachable: spam.error with its header and log line; the operator may make it a 451", async () => {
  const { SpamCheck } = await import("./index.ts");
  const { CheckRunner } = await import("../policy/index.ts");
  const net = await import("node:net");
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0));
    });
  });
  const check = new SpamCheck({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000, maxSize: 1 << 20, authservId: "mx.test" });
  const input = { clientIp: "192.0.2.1", helo: "h.test", mailFrom: "a@h.test", recipients: ["b@mx.test", "ü@mx.test"], content: Buffer.from("From: a@h.test\r\n\r\nx\r\n"), state: new TransactionState() };
  const out = await check.data({ ...input, signal: AbortSignal.timeout(5000) });
  assert.deepEqual(out.verdicts, ["spam.error"]);
  assert.deepEqual(out.headers, ["X-Wardmail-Spam: error (rspamd unavailable)"]);
  assert.equal(out.logs?.[0]?.level, "warn");
  const logs: string[] = [];
  const logger = { error: () => {}, warn: (_: unknown, m: string) => logs.push(m), info: () => {}, debug: () => {} } as unknown as Logger;
  const d = await new CheckRunner([check], { "spam.error": "tempfail" }, 5000).run("data", input, logger);
  assert.equal(d.action, "tempfail");
  assert.equal(d.reply?.code, 451);
  assert.match(d.reply?.lines.join(" ") ?? "", /Spam filter unavailable/);
  assert.deepEqual(logs, ["rspamd failed; verdict spam.error"]);
  // Too big: not sent at all.
  const big = new SpamCheck({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000, maxSize: 1024, authservId: "mx.test" });
  const skipped = await big.data({ ...input, content: Buffer.alloc(2048, 0x61), signal: AbortSignal.timeout(5000) });
  assert.deepEqual(skipped.verdicts, []);
  assert.deepEqual(skipped.headers, ["X-Wardmail-Spam: skipped (size 2048 over 1024)"]);
});
