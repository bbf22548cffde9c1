// bench/run/postfix-log.ts: which Postfix log lines make a bench run not verified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { countPostfixLog, isPostfixProblem } from "../bench/run/postfix-log.ts";

const CLOCK = [
  "Dec 08 03:59:38 wmpf18454x1p32244 wmpf18454x1p32244/cleanup[18927]: warning: file system clock is 1 seconds ahead of local clock",
  "Dec 08 03:59:38 wmpf18454x1p32244 wmpf18454x1p32244/cleanup[18927]: warning: resetting file time stamps - this hurts performance",
];

test("isPostfixProblem: rejects, warnings, fatals, errors and panics, but not the clock-ahead pair", () => {
  for (const l of CLOCK) assert.equal(isPostfixProblem(l), false, l);
  assert.equal(isPostfixProblem("Dec 08 04:01:25 h h/smtpd[1]: warning: hostname x does not resolve to address 127.0.0.1"), true);
  assert.equal(isPostfixProblem("Dec 08 04:01:25 h h/cleanup[1]: warning: 4F2A1: file system clock is 1 seconds ahead of local clock; more"), false);
  assert.equal(isPostfixProblem("Dec 08 04:01:25 h h/smtpd[1]: NOQUEUE: reject: RCPT from x[127.0.0.1]: 554 5.7.1 <a@b>: Relay access denied"), true);
  assert.equal(isPostfixProblem("Dec 08 04:01:25 h h/master[1]: fatal: open lock file: Permission denied"), true);
  assert.equal(isPostfixProblem("Dec 08 04:01:25 h h/smtpd[1]: connect from localhost[127.0.0.1]"), false);
});

test("countPostfixLog lists problems without the clock-ahead pair", () => {
  const c = countPostfixLog([...CLOCK, "Dec 08 04:01:25 h wmpf/smtpd[1]: warning: something else"].join("\n"), "wmpf");
  assert.deepEqual(c.problems, ["Dec 08 04:01:25 h wmpf/smtpd[1]: warning: something else"]);
});
