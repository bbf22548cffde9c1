/**
 * `wardmail dkim keygen|list` run in-process through main() against a
 * temporary data directory named in a config file: help, usage errors,
 * exit codes (0 ok, 1 answer is no, 2 usage, 3 cannot read/write), what
 * keygen prints and writes, list in text and JSON, and the round trip the
 * operator makes: the records keygen prints (read back from its zone-file
 * lines) verify a message the server signs with the stored keys.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dkimVerify } from "mailauth";
import { defaultSelector, loadSigningKeys, signMessage } from "../dkim/index.ts";
import { txtResolver, txtStrings } from "../../test/helpers/dkim.ts";
import { main } from "./main.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let dataDir: string;
let configFile: string;

async function run(args: string[], config: string | undefined = configFile): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main([...args, ...(config === undefined ? [] : ["--config", config])], { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** name -> TXT value from zone-file TXT lines. */
function recordsOf(out: string): Record<string, string> {
  const recs: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^(\S+)\.\tIN\tTXT\t/.exec(line);
    if (m) recs[m[1] as string] = txtStrings(line).join("");
  }
  return recs;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-dkim-cli-"));
  dataDir = join(dir, "data");
  configFile = join(dir, "wardmail.toml");
  await writeFile(configFile, `[server]\ndata_dir = ${JSON.stringify(dataDir)}\nhostname = "mail.example.com"\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("wardmail dkim", () => {
  test("help and usage errors", async () => {
    for (const args of [["dkim", "--help"], ["dkim", "keygen", "--help"], ["dkim", "list", "-h"]]) {
      const r = await run(args, undefined);
      assert.equal(r.code, 0, args.join(" "));
      assert.match(r.stdout, /^Usage: wardmail dkim/);
      assert.match(r.stdout, /Exit codes: 0 done, 1 answer is no/);
    }
    assert.match((await run(["dkim", "keygen", "--help"], undefined)).stdout, /S-ed25519\._domainkey\.D/);
    assert.match((await run(["--help"], undefined)).stdout, /dkim keygen --domain D/);
    const cases: [string[], RegExp][] = [
      [["dkim"], /missing action/],
      [["dkim", "rotate"], /unknown action 'rotate'/],
      [["dkim", "keygen"], /--domain is required/],
      [["dkim", "keygen", "--domain", "example.com", "--json"], /--json is for list only/],
      [["dkim", "keygen", "--domain", "example.com", "extra"], /unexpected argument 'extra'/],
      [["dkim", "list", "--domain", "example.com"], /for keygen only/],
      [["dkim", "list", "--bogus"], /Unknown option '--bogus'/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, re);
    }
    assert.equal(existsSync(dataDir), false, "nothing written");
  });

  test("list before any key; an unreadable config is exit 3", async () => {
    assert.deepEqual(await run(["dkim", "list"]), { code: 0, stdout: "no DKIM keys (create some with: wardmail dkim keygen --domain DOMAIN)\n", stderr: "" });
    assert.deepEqual(await run(["dkim", "list", "--json"]), { code: 0, stdout: "[]\n", stderr: "" });
    const r = await run(["dkim", "list"], join(dir, "missing.toml"));
    assert.equal(r.code, 3);
  });

  test("keygen prints the two records, writes the keys, refuses to overwrite unless --force", async () => {
    const r = await run(["dkim", "keygen", "--domain", "Example.COM", "--selector", "s1"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.equal(lines[0], "; DKIM keys of example.com, selector s1: publish both records");
    assert.match(lines[1] ?? "", /^s1-rsa\._domainkey\.example\.com\.\tIN\tTXT\t"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+" "[A-Za-z0-9+/=]+"$/);
    assert.match(lines[2] ?? "", /^s1-ed25519\._domainkey\.example\.com\.\tIN\tTXT\t"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$/);
    assert.match(r.stderr, /^wrote .*s1\.rsa\.pem and .*s1\.ed25519\.pem\n$/);
    for (const t of ["rsa", "ed25519"]) assert.equal((await stat(join(dataDir, "dkim", "example.com", `s1.${t}.pem`))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dataDir, "dkim"))).mode & 0o777, 0o700);

    const again = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "s1"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /keys for selector s1 of example\.com exist already \(give --selector for a new key set, or --force to replace these keys\)/);
    const forced = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--force"]);
    assert.equal(forced.code, 0);
    assert.notDeepEqual(recordsOf(forced.stdout), recordsOf(r.stdout));

    const badDomain = await run(["dkim", "keygen", "--domain", "localhost"]);
    assert.equal(badDomain.code, 1);
    assert.match(badDomain.stderr, /not a domain name: "localhost"/);
    const badSelector = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "a.b"]);
    assert.equal(badSelector.code, 1);
    assert.match(badSelector.stderr, /not a selector: "a\.b"/);
  });

  test("the default selector is wm + this year and month", async () => {
    const r = await run(["dkim", "keygen", "--domain", "example.net"]);
    assert.equal(r.code, 0, r.stderr);
    const sel = defaultSelector(new Date());
    assert.deepEqual(Object.keys(recordsOf(r.stdout)), [`${sel}-rsa._domainkey.example.net`, `${sel}-ed25519._domainkey.example.net`]);
  });

  test("list: text and JSON, with the records keygen printed", async () => {
    const made = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "s2"]);
    const r = await run(["dkim", "list"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? "", /^example\.com {2}s2 +rsa-2048 \(s2-rsa\) \+ ed25519 \(s2-ed25519\) {2}created \d{4}-\d\d-\d\dT/);
    assert.match(lines[1] ?? "", /^example\.com {2}s1 /);
    assert.match(lines[2] ?? "", /^example\.net {2}wm\d{6} /);
    assert.equal(lines[3], "3 key sets");

    const j = await run(["dkim", "list", "--json"]);
    const sets = JSON.parse(j.stdout) as { domain: string; selector: string; created: string; keys: { type: string; bits?: number; selector: string; name: string; value: string }[] }[];
    assert.deepEqual(sets.map((s) => [s.domain, s.selector]), [["example.com", "s2"], ["example.com", "s1"], ["example.net", defaultSelector(new Date())]]);
    assert.deepEqual(sets[0]?.keys.map((k) => [k.type, k.bits, k.selector]), [["rsa", 2048, "s2-rsa"], ["ed25519", undefined, "s2-ed25519"]]);
    assert.deepEqual(Object.fromEntries(sets[0]?.keys.map((k) => [k.name, k.value]) ?? []), recordsOf(made.stdout));
  });

  test("the printed records verify what the server signs with the stored keys", async () => {
    const recs = { ...recordsOf((await run(["dkim", "keygen", "--domain", "example.org", "--selector", "rt"])).stdout) };
    const keys = await loadSigningKeys(dataDir);
    const msg = Buffer.from("From: joe@example.org\r\nTo: ann@example.net\r\nSubject: hi\r\n\r\nHello.\r\n");
    const signed = await signMessage(msg, keys, { domain: "example.org" });
    const v = await dkimVerify(signed, { resolver: txtResolver(recs), strict: true });
    assert.deepEqual(v.results.map((x) => [x.status.result, x.selector]), [["pass", "rt-rsa"], ["pass", "rt-ed25519"]]);
  });

  test("unusable key files: list names them on stderr and answers 1", async () => {
    await writeFile(join(dataDir, "dkim", "example.com", "s3.rsa.pem"), "-----BEGIN PRIVATE KEY-----\nbroken\n");
    const r = await run(["dkim", "list"]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /4 key sets\n$/);
    assert.match(r.stderr, /s3\.ed25519\.pem is missing: selector s3 of example\.com does not sign/);
    await rm(join(dataDir, "dkim", "example.com", "s3.rsa.pem"));
  });

  test("a key directory that cannot be read or written: exit 3", async () => {
    const other = join(dir, "blocked");
    await mkdir(other);
    await writeFile(join(other, "dkim"), "a file where the directory should be");
    const cfg = join(dir, "blocked.toml");
    await writeFile(cfg, `[server]\ndata_dir = ${JSON.stringify(other)}\n`);
    const l = await run(["dkim", "list"], cfg);
    assert.equal(l.code, 3);
    assert.match(l.stderr, /cannot read .*dkim/);
    const k = await run(["dkim", "keygen", "--domain", "example.com"], cfg);
    assert.equal(k.code, 3);
    assert.match(k.stderr, /cannot write the keys/);
  });
});
