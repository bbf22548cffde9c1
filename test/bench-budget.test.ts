// bench/report.ts's coreBudget: the ceiling a shared load side puts on a ratio, and the server CPU a target asks for.
import { test } from "node:test";
import assert from "node:assert/strict";
import { budgetLine, coreBudget, targetLine } from "../bench/report.ts";

test("coreBudget: 2 cores, 0.5 ms of load-side CPU per message, a peer at 1000 msg/s", () => {
  const b = coreBudget(2, 0.5, 1000, 2);
  // at zero server CPU: 2000 / 0.5 = 4000 msg/s, 4x the peer
  assert.equal(b.ceiling, 4);
  // 2x = 2000 msg/s = 1 ms of machine CPU per message, 0.5 of it the load side's
  assert.equal(b.budgetMs, 0.5);
  assert.ok(coreBudget(2, 0.5, 1000, 4).budgetMs <= 0, "4x is the ceiling: no CPU left for the server");
});

test("budgetLine says when a target is out of reach, and otherwise what it asks of the server", () => {
  assert.match(budgetLine("10 msgs/conn W/P", 2, "smtp-source", 0.5, 1000, 2, 0.68), /at most 4\.00 even at zero server CPU; 2x needs the server's CPU at most 0\.50 ms\/msg \(used 0\.68\)/);
  assert.match(budgetLine("10 msgs/conn W/P", 2, "smtp-source", 0.5, 1000, 5, 0.68), /5x is out of reach on this machine/);
});

test("targetLine: met at or over the target, NOT met under it", () => {
  assert.equal(targetLine("1 msg/conn", "W/Pstack", 3.14, 3), "target 1 msg/conn   W/Pstack  median 3.14 >= 3: met");
  assert.equal(targetLine("10 msgs/conn", "W/P", 0.84, 3), "target 10 msgs/conn W/P       median 0.84 < 3: NOT met");
});
