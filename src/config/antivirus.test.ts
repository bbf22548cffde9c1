// The [antivirus] and [attachments] sections: clamd targets, timeouts, the
// overrides table; every mistake named with key and line.
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

void test("[antivirus]: defaults, TCP and unix socket targets", () => {
  assert.deepEqual(parse("").antivirus, { enabled: true, timeout: 15, maxSize: 26214400 });
  assert.deepEqual(parse('[antivirus]\nclamd = "127.0.0.1:3310"\n').antivirus.clamd, { host: "127.0.0.1", port: 3310 });
  assert.deepEqual(parse('[antivirus]\nclamd = "[::1]:3310"\n').antivirus.clamd, { host: "::1", port: 3310 });
  assert.deepEqual(parse('[antivirus]\nclamd = "/run/clamav/clamd.ctl"\n').antivirus.clamd, { path: "/run/clamav/clamd.ctl" });
  assert.deepEqual(parse('[antivirus]\nclamd = "unix:/var/run/clamd.sock"\n').antivirus.clamd, { path: "/var/run/clamd.sock" });
  assert.equal(parse("[antivirus]\nenabled = false\n").antivirus.enabled, false);
});

void test("[antivirus]: bad values are named with their line", () => {
  for (const bad of ['"localhost"', '"clamd.example:3310"', '"relative/sock"', "3310", '"127.0.0.1:99999"']) {
    const issues = issuesOf(`[antivirus]\nclamd = ${bad}\n`);
    assert.equal(issues.length, 1, bad);
    assert.equal(issues[0]?.key, "antivirus.clamd");
    assert.equal(issues[0]?.line, 2);
  }
  assert.equal(issuesOf("[antivirus]\nmax_size = 10\n")[0]?.key, "antivirus.max_size");
  // A clamd timeout at or past the checks' deadline.
  const late = issuesOf('[checks]\ntimeout = 10\n[antivirus]\nclamd = "127.0.0.1:3310"\n');
  assert.equal(late[0]?.key, "antivirus.timeout");
  assert.match(late[0]?.message ?? "", /not below checks\.timeout \(10\) \(a default value\)/);
  assert.equal(parse('[checks]\ntimeout = 10\n').checks.timeout, 10);
});

void test("[attachments]: defaults, overrides by domain and mailbox, verdict actions", () => {
  const d = parse("");
  assert.deepEqual(d.attachments, { enabled: true, maxDepth: 5, maxArchiveEntries: 1000, maxUnpacked: 67108864, overrides: {} });
  assert.equal(d.checks.actions["attachment.executable"], "reject");
  assert.equal(d.checks.actions["attachment.encrypted_archive"], "quarantine");
  assert.equal(d.checks.actions["virus.found"], "reject");
  assert.equal(d.checks.actions["virus.error"], "tempfail");
  const c = parse('[attachments.overrides."Example.ORG"]\nexecutable = "quarantine"\n[attachments.overrides."Boss@example.org"]\nmacro = "tag"\n');
  assert.deepEqual(c.attachments.overrides, { "example.org": { executable: "quarantine" }, "boss@example.org": { macro: "tag" } });
});

void test("[attachments]: bad overrides are named with their key and line", () => {
  const unknown = issuesOf('[attachments.overrides."example.org"]\nexe = "reject"\n');
  assert.equal(unknown[0]?.key, 'attachments.overrides."example.org".exe');
  assert.equal(unknown[0]?.line, 2);
  assert.match(unknown[0]?.message ?? "", /expected one of executable, disk_image, macro, encrypted_archive, unscannable/);
  assert.equal(issuesOf('[attachments.overrides."example.org"]\nmacro = "delete"\n')[0]?.key, 'attachments.overrides."example.org".macro');
  assert.equal(issuesOf('[attachments.overrides."not a domain"]\nmacro = "reject"\n').length, 1);
  assert.equal(issuesOf('[attachments.overrides]\n"example.org" = "reject"\n').length, 1);
  assert.equal(issuesOf("[attachments]\nmax_depth = 0\n")[0]?.key, "attachments.max_depth");
});
