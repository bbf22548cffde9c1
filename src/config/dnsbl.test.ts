// The [dnsbl] section: zones with weights and answer networks, threshold,
// timeout below checks.timeout; every mistake named with key and line.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, parseConfig, type ConfigIssue } from "./index.ts";

const parse = (src: string) => parseConfig(src, { file: "/etc/wardmail/w.toml", env: {}, cwd: "/srv/wm" });

function issuesOf(src: string): ConfigIssue[] {
  try {
    parse(src);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.issues];
  }
  assert.fail("expected a ConfigError");
}

test("[dnsbl]: zones with weights (negative: allowlist) and answers; threshold; defaults", () => {
  const c = parse(`[dnsbl]
zones = [
  { zone = "ZEN.Spamhaus.org.", weight = 3, answers = ["127.0.0.2", "127.0.0.4/30"] },
  { zone = "bl.spamcop.net" },
  { zone = "list.dnswl.org", weight = -2 },
]
threshold = 3
`);
  assert.deepEqual(c.dnsbl, {
    zones: [
      { zone: "zen.spamhaus.org", weight: 3, answers: ["127.0.0.2/32", "127.0.0.4/30"] },
      { zone: "bl.spamcop.net", weight: 1, answers: [] },
      { zone: "list.dnswl.org", weight: -2, answers: [] },
    ],
    threshold: 3,
    timeout: 5,
  });
  assert.equal(c.checks.actions["dnsbl.listed"], "reject");
  assert.equal(parse('[checks.actions]\n"dnsbl.listed" = "tag"\n').checks.actions["dnsbl.listed"], "tag");
  assert.deepEqual(parse("").dnsbl, { zones: [], threshold: 1, timeout: 5 });
});

test("[dnsbl]: each bad zone entry is reported at its key and line", () => {
  const issues = issuesOf(`[dnsbl]
zones = [
  { zone = "not a domain" },
  { zone = "bl.test", weight = 0 },
  { zone = "bl2.test", answers = ["10.0.0.1"] },
  { zone = "bl3.test", colour = "red" },
  "bl4.test",
  { zone = "bl5.test" },
  { zone = "BL5.test" },
]
threshold = 0
`);
  const keys = issues.map((i) => `${i.key}:${i.line}`);
  assert.deepEqual(keys, [
    "dnsbl.zones[0].zone:3",
    "dnsbl.zones[1].weight:4",
    "dnsbl.zones[2].answers[0]:5",
    "dnsbl.zones[3].colour:6",
    "dnsbl.zones[4]:7",
    "dnsbl.zones[6]:9",
    "dnsbl.threshold:11",
  ], JSON.stringify(issues));
  assert.match(issues[1]?.message ?? "", /non-zero integer from -100 to 100/);
  assert.match(issues[2]?.message ?? "", /127\.0\.0\.0\/8/);
  assert.match(issues[5]?.message ?? "", /listed twice/);
});

test("[dnsbl]: the timeout must be below checks.timeout (fail open before the checks' deadline fails closed)", () => {
  const [issue] = issuesOf('[checks]\ntimeout = 5\n[dnsbl]\nzones = [{ zone = "bl.test" }]\n');
  assert.equal(issue?.key, "dnsbl.timeout");
  assert.match(issue?.message ?? "", /not below checks\.timeout \(5\) \(a default value\)/);
  assert.equal(parse('[checks]\ntimeout = 5\n[dnsbl]\nzones = [{ zone = "bl.test" }]\ntimeout = 4\n').dnsbl.timeout, 4);
  assert.equal(parse("[checks]\ntimeout = 5\n").dnsbl.zones.length, 0, "no zones: no rule");
});
