// [spam], [impersonation] and the accounts.hold_* keys: defaults, checks,
// and the warning for an rspamd on a public address (plain HTTP).
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError, loadConfigWithWarnings, parseConfig } from "./index.ts";

const parse = (src: string) => parseConfig(src, { file: "/etc/wardmail/w.toml", env: {}, cwd: "/srv/wm" });

test("defaults: no rspamd, impersonation on without the external tag, hold at 10 x usual", () => {
  const c = parse("");
  assert.deepEqual(c.spam, { rspamd: "", timeout: 10, maxSize: 20971520 });
  assert.deepEqual(c.impersonation, { enabled: true, externalTag: false });
  assert.deepEqual(c.accountHold, { holdFactor: 10, holdMinMessages: 50, holdMinRecipients: 200, holdHistory: 14, holdRefusedPercent: 50, holdRefusedMin: 20 });
  assert.equal(c.checks.actions["spam.error"], "tag");
  assert.equal(c.checks.actions["spam.reject"], "reject");
  assert.equal(parse('[checks.actions]\n"impersonation.domain" = "quarantine"\n').checks.actions["impersonation.domain"], "quarantine");
});

test("bad values are named with their key", () => {
  for (const [src, key] of [
    ["[accounts]\nhold_refused_percent = 101\n", "accounts.hold_refused_percent"],
    ["[accounts]\nhold_history = 0\n", "accounts.hold_history"],
    ["[impersonation]\nexternal_tag = \"yes\"\n", "impersonation.external_tag"],
    ["[spam]\nmax_size = 10\n", "spam.max_size"],
    ["[checks.actions]\n\"spam.maybe\" = \"tag\"\n", "checks.actions.spam.maybe"],
  ] as const) {
    assert.throws(() => parse(src), (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.key === key || i.key === `checks.actions."spam.maybe"`), src);
  }
});

test("an rspamd on a public address is a warning (plain HTTP); loopback and private are not", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "wardmail-spam-"));
  try {
    const warningsOf = async (url: string) => {
      const file = path.join(dir, "w.toml");
      await writeFile(file, `[spam]\nrspamd = "${url}"\n`);
      return (await loadConfigWithWarnings(file, {}, { nameservers: () => [{ host: "127.0.0.53" }] })).warnings;
    };
    const [w] = await warningsOf("http://198.51.100.7:11333");
    assert.ok(w === undefined, "documentation range is not public");
    const [pub] = await warningsOf("http://8.8.8.8:11333");
    assert.equal(pub?.key, "spam.rspamd");
    assert.equal(pub?.line, 2);
    assert.match(pub?.message ?? "", /public address: every message goes there in plain HTTP/);
    assert.deepEqual(await warningsOf("http://10.0.0.5:11333"), []);
    assert.deepEqual(await warningsOf("http://[::1]:11333"), []);
    assert.deepEqual(await warningsOf("http://rspamd.internal:11333"), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
