/**
 * `wardmail user ...` run in-process through main() against a temporary
 * data directory named in a config file, with a fake stdin for
 * --password-stdin: every action, its output and its exit code (0 ok,
 * 1 answer is no, 2 usage, 3 cannot read), and that what it writes is what
 * the store (and so the server) reads.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { AccountStore, type AccountInfo } from "../accounts/index.ts";
import { main } from "./main.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let dataDir: string;
let configFile: string;

/** Runs `wardmail user <args> --config <file>` with `input` as stdin (a non-TTY stream). */
async function user(args: string[], input = ""): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(["user", ...args, "--config", configFile], {
    out: (t) => (stdout += t),
    err: (t) => (stderr += t),
    stdin: Readable.from(input === "" ? [] : [input]),
  });
  return { code, stdout, stderr };
}

function openStore(): AccountStore {
  return AccountStore.open(dataDir, { create: false, localDomains: ["example.test"] });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-user-cli-"));
  dataDir = join(dir, "data");
  configFile = join(dir, "wardmail.toml");
  await writeFile(
    configFile,
    `[server]\ndata_dir = ${JSON.stringify(dataDir)}\n[local]\ndomains = ["example.test"]\nmailboxes = ["postmaster@example.test"]\n`,
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("wardmail user", () => {
  test("before any account: list is empty, other actions answer no, nothing is created", async () => {
    assert.deepEqual(await user(["list"]), { code: 0, stdout: "no accounts\n", stderr: "" });
    assert.deepEqual(await user(["list", "--json"]), { code: 0, stdout: "[]\n", stderr: "" });
    const r = await user(["remove", "alice@example.test"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such account: alice@example.test/);
    assert.equal((await user(["alias", "remove", "x@example.test"])).code, 1);
    assert.equal(AccountStore.exists(dataDir), false);
  });

  test("add, duplicate add, refused address and password", async () => {
    const r = await user(["add", "Alice@Example.test", "--password-stdin"], "secret-password\nignored second line\n");
    assert.deepEqual(r, { code: 0, stdout: "added alice@example.test\n", stderr: "" });
    const store = openStore();
    assert.equal(await store.checkPassword("alice@example.test", "secret-password"), "alice@example.test");
    store.close();

    const dup = await user(["add", "alice@example.test", "--password-stdin"], "secret-password\n");
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /^wardmail user: account alice@example.test exists already\n$/);

    const foreign = await user(["add", "bob@elsewhere.test", "--password-stdin"], "secret-password\n");
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /not in a local domain \(add it to \[local\] domains\)/);

    const bad = await user(["add", "a%b@example.test", "--password-stdin"], "secret-password\n");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not a valid address/);

    const short = await user(["add", "bob@example.test", "--password-stdin"], "qz7xw\n");
    assert.equal(short.code, 1);
    assert.match(short.stderr, /password too short/);
    assert.ok(!short.stderr.includes("qz7xw") && !short.stdout.includes("qz7xw"), "the password is not echoed");

    const empty = await user(["add", "bob@example.test", "--password-stdin"], "");
    assert.equal(empty.code, 1);

    // CRLF line ending: the CR is not part of the password.
    assert.equal((await user(["add", "bob@example.test", "--password-stdin"], "bob-password\r\n")).code, 0);
    const s = openStore();
    assert.equal(await s.checkPassword("bob@example.test", "bob-password"), "bob@example.test");
    s.close();
  });

  test("without --password-stdin and with stdin not a terminal: usage error, nothing asked", async () => {
    const r = await user(["add", "carol@example.test"], "secret-password\n");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /use --password-stdin/);
    assert.equal(r.stdout, "");
    const p = await user(["passwd", "alice@example.test"], "secret-password\n");
    assert.equal(p.code, 2);
  });

  test("alias add/remove and list", async () => {
    const a = await user(["alias", "add", "Postmaster@example.test", "alice@example.test"]);
    assert.deepEqual(a, { code: 0, stdout: "alias postmaster@example.test -> alice@example.test\n", stderr: "" });
    assert.equal((await user(["alias", "add", "postmaster@example.test", "bob@example.test"])).code, 1);
    assert.equal((await user(["alias", "add", "x@example.test", "nobody@example.test"])).code, 1);
    assert.equal((await user(["alias", "add", "x@elsewhere.test", "alice@example.test"])).code, 1);
    assert.equal((await user(["alias", "add", "tmp@example.test", "bob@example.test"])).code, 0);
    assert.deepEqual(await user(["alias", "remove", "TMP@example.test"]), { code: 0, stdout: "removed alias tmp@example.test\n", stderr: "" });
    assert.equal((await user(["alias", "remove", "tmp@example.test"])).code, 1);

    const list = await user(["list"]);
    assert.equal(list.code, 0);
    assert.equal(list.stdout, "alice@example.test  aliases: postmaster@example.test\nbob@example.test\n2 accounts\n");
  });

  test("senders add/list/remove", async () => {
    assert.equal((await user(["senders", "add", "alice@example.test", "@Corp.Example"])).code, 0);
    assert.equal((await user(["senders", "add", "alice@example.test", "alice@gmail.example"])).code, 0);
    assert.equal((await user(["senders", "add", "alice@example.test", "@corp.example"])).code, 1, "listed already");
    assert.equal((await user(["senders", "add", "nobody@example.test", "@corp.example"])).code, 1);
    assert.equal((await user(["senders", "add", "alice@example.test", "a!b@corp.example"])).code, 1);
    assert.deepEqual(await user(["senders", "list", "alice@example.test"]), { code: 0, stdout: "@corp.example\nalice@gmail.example\n", stderr: "" });
    assert.deepEqual(await user(["senders", "list", "alice@example.test", "--json"]), { code: 0, stdout: '["@corp.example","alice@gmail.example"]\n', stderr: "" });
    assert.equal((await user(["senders", "list", "postmaster@example.test"])).code, 1, "an alias is not an account");
    const store = openStore();
    assert.equal(store.maySendAs("alice@example.test", "anyone@corp.example"), true);
    store.close();
    assert.equal((await user(["senders", "remove", "alice@example.test", "alice@gmail.example"])).code, 0);
    assert.equal((await user(["senders", "remove", "alice@example.test", "alice@gmail.example"])).code, 1);
  });

  test("app-password add prints the secret once; it logs in; list; remove revokes", async () => {
    const r = await user(["app-password", "add", "alice@example.test", "my phone"]);
    assert.equal(r.code, 0);
    const secret = r.stdout.trim();
    assert.match(secret, /^[a-z0-9]{4}(-[a-z0-9]{4}){3}$/);
    assert.match(r.stderr, /cannot be shown again/);
    assert.equal((await user(["app-password", "add", "alice@example.test", "my phone"])).code, 1);
    assert.equal((await user(["app-password", "add", "nobody@example.test", "x"])).code, 1);

    let store = openStore();
    assert.equal(await store.checkPassword("alice@example.test", secret), "alice@example.test");
    store.close();

    const list = await user(["app-password", "list", "alice@example.test", "--json"]);
    const apps = JSON.parse(list.stdout) as { name: string; created: number }[];
    assert.deepEqual(apps.map((a) => a.name), ["my phone"]);
    assert.ok(!list.stdout.includes(secret));
    assert.match((await user(["app-password", "list", "alice@example.test"])).stdout, /^my phone {2}\(created \d{4}-/);
    assert.ok(!(await user(["list", "--json"])).stdout.includes(secret));

    assert.deepEqual(await user(["app-password", "remove", "alice@example.test", "my phone"]), {
      code: 0,
      stdout: 'revoked app password "my phone" of alice@example.test\n',
      stderr: "",
    });
    assert.equal((await user(["app-password", "remove", "alice@example.test", "my phone"])).code, 1);
    store = openStore();
    assert.equal(await store.checkPassword("alice@example.test", secret), undefined);
    store.close();
  });

  test("passwd changes the password and revokes app passwords, saying so", async () => {
    const secret = (await user(["app-password", "add", "alice@example.test", "laptop"])).stdout.trim();
    const r = await user(["passwd", "alice@example.test", "--password-stdin"], "new-secret-password\n");
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "password changed for alice@example.test\nrevoked 1 app password (they depend on the old password): laptop\n");
    const store = openStore();
    assert.equal(await store.checkPassword("alice@example.test", "secret-password"), undefined);
    assert.equal(await store.checkPassword("alice@example.test", secret), undefined);
    assert.equal(await store.checkPassword("alice@example.test", "new-secret-password"), "alice@example.test");
    store.close();
    assert.equal((await user(["passwd", "nobody@example.test", "--password-stdin"], "new-secret-password\n")).code, 1);
    const alias = await user(["passwd", "postmaster@example.test", "--password-stdin"], "new-secret-password\n");
    assert.equal(alias.code, 1);
    assert.match(alias.stderr, /is an alias of alice@example.test, not an account/);
  });

  test("disable and enable", async () => {
    assert.deepEqual(await user(["disable", "bob@example.test"]), { code: 0, stdout: "disabled bob@example.test\n", stderr: "" });
    let store = openStore();
    assert.equal(await store.checkPassword("bob@example.test", "bob-password"), undefined);
    store.close();
    assert.match((await user(["list"])).stdout, /^bob@example.test {2}\(disabled\)$/m);
    assert.equal((await user(["enable", "bob@example.test"])).code, 0);
    store = openStore();
    assert.equal(await store.checkPassword("bob@example.test", "bob-password"), "bob@example.test");
    store.close();
    assert.equal((await user(["enable", "nobody@example.test"])).code, 1);
  });

  test("list --json is an array of AccountInfo", async () => {
    const r = await user(["list", "--json"]);
    assert.equal(r.code, 0);
    const accounts = JSON.parse(r.stdout) as AccountInfo[];
    assert.deepEqual(
      accounts.map((a) => ({ address: a.address, aliases: a.aliases, senders: a.senders, apps: a.appPasswords.length, disabled: a.disabled, created: typeof a.created })),
      [
        { address: "alice@example.test", aliases: ["postmaster@example.test"], senders: ["@corp.example"], apps: 0, disabled: false, created: "number" },
        { address: "bob@example.test", aliases: [], senders: [], apps: 0, disabled: false, created: "number" },
      ],
    );
  });

  test("remove takes the account's aliases along", async () => {
    assert.equal((await user(["remove", "Alice@example.test"])).code, 0);
    assert.equal((await user(["remove", "alice@example.test"])).code, 1);
    const store = openStore();
    assert.equal(store.resolve("postmaster@example.test"), undefined);
    store.close();
    assert.equal((await user(["list"])).stdout, "bob@example.test\n1 account\n");
  });

  test("usage errors exit 2; --help exits 0", async () => {
    const usage: string[][] = [
      [],
      ["bogus"],
      ["add"],
      ["add", "a@example.test", "b@example.test"],
      ["list", "extra"],
      ["remove"],
      ["alias"],
      ["alias", "bogus"],
      ["alias", "add", "x@example.test"],
      ["senders", "list"],
      ["app-password", "add", "bob@example.test"],
      ["list", "--password-stdin"],
      ["remove", "bob@example.test", "--json"],
      ["list", "--bogus"],
    ];
    for (const args of usage) {
      const r = await user(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", args.join(" "));
    }
    for (const args of [["--help"], ["add", "--help"], ["alias", "--help"], ["alias", "add", "--help"], ["senders", "--help"], ["app-password", "list", "-h"], ["list", "--help"]]) {
      const r = await user(args);
      assert.equal(r.code, 0, args.join(" "));
      assert.match(r.stdout, /^Usage: wardmail user/, args.join(" "));
    }
    assert.match((await user(["add", "--help"])).stdout, /--password-stdin/);
    let help = "";
    assert.equal(await main(["--help"], { out: (t) => (help += t), err: () => undefined }), 0);
    assert.match(help, /\n {2}user <action>/);
  });

  test("an unreadable config exits 3", async () => {
    let stderr = "";
    const code = await main(["user", "list", "--config", join(dir, "missing.toml")], { out: () => undefined, err: (t) => (stderr += t) });
    assert.equal(code, 3);
    assert.notEqual(stderr, "");
  });
});
