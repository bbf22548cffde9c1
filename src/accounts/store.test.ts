/**
 * The account store: accounts, aliases, senders and maySendAs; passwords
 * and app passwords through checkPassword and scramCredentials (keys checked
 * against deriveScramKeys); strict address validation; persistence and a
 * second instance on the same file seeing changes at once.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deriveScramKeys } from "../auth/index.ts";
import { AccountError, AccountStore, generateAppSecret, normalizeAddress } from "./index.ts";

const DOMAINS = ["example.test", "other.test"];
const PW = "correct horse battery";

let dir: string;
let n = 0;

/** A store in a fresh data directory. */
function fresh(): { store: AccountStore; dataDir: string } {
  const dataDir = join(dir, `d${++n}`);
  return { store: AccountStore.open(dataDir, { create: true, localDomains: DOMAINS }), dataDir };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-accounts-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("opening", () => {
  test("creates the directory 0700 and the file 0600; without create a missing file is an error", async () => {
    const dataDir = join(dir, "open", "data");
    assert.equal(AccountStore.exists(dataDir), false);
    assert.throws(() => AccountStore.open(dataDir, { create: false, localDomains: DOMAINS }), /no accounts database/);
    assert.equal(AccountStore.exists(dataDir), false, "open without create does not create the file");
    const store = AccountStore.open(dataDir, { create: true, localDomains: DOMAINS });
    store.close();
    assert.equal(AccountStore.exists(dataDir), true);
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    assert.equal((await stat(AccountStore.path(dataDir))).mode & 0o777, 0o600);
    const again = AccountStore.open(dataDir, { create: false, localDomains: DOMAINS });
    assert.deepEqual(again.list(), []);
    assert.equal(again.db.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
    again.close();
  });

  test("refuses a file from a newer schema", () => {
    const { store, dataDir } = fresh();
    store.db.exec("PRAGMA user_version = 99");
    store.close();
    assert.throws(() => AccountStore.open(dataDir, { create: false, localDomains: DOMAINS }), /schema version 99, newer/);
  });
});

describe("accounts, aliases, senders", () => {
  test("add, resolve, get, list; duplicates and clashes are refused", async () => {
    const { store } = fresh();
    await store.addAccount("Alice@Example.Test", PW);
    await store.addAccount("bob@example.test", PW);
    assert.equal(store.resolve("ALICE@example.test"), "alice@example.test");
    assert.equal(store.resolve("nobody@example.test"), undefined);
    assert.equal(store.resolve("not an address"), undefined);
    await assert.rejects(store.addAccount("alice@EXAMPLE.test", PW), (e: unknown) => e instanceof AccountError && /exists already/.test(e.message));

    store.addAlias("Postmaster@example.test", "alice@example.test");
    store.addAlias("a@other.test", "ALICE@example.test");
    assert.equal(store.resolve("postmaster@EXAMPLE.TEST"), "alice@example.test");
    assert.equal(store.resolve("a@other.test"), "alice@example.test");
    assert.throws(() => store.addAlias("postmaster@example.test", "bob@example.test"), /already an alias of alice@example.test/);
    assert.throws(() => store.addAlias("bob@example.test", "alice@example.test"), /account bob@example.test exists already/);
    assert.throws(() => store.addAlias("x@example.test", "nobody@example.test"), /no such account/);
    assert.throws(() => store.addAlias("x@example.test", "postmaster@example.test"), /is an alias of alice@example.test, not an account/);
    assert.throws(() => store.addAlias("x@elsewhere.test", "alice@example.test"), /not in a local domain \(add it to \[local\] domains\)/);
    await assert.rejects(store.addAccount("postmaster@example.test", PW), /already an alias/);

    assert.deepEqual(store.get("alice@example.test")?.aliases, ["a@other.test", "postmaster@example.test"]);
    assert.equal(store.get("postmaster@example.test"), undefined, "get takes accounts, not aliases");
    assert.deepEqual(
      store.list().map((a) => [a.address, a.aliases, a.disabled]),
      [
        ["alice@example.test", ["a@other.test", "postmaster@example.test"], false],
        ["bob@example.test", [], false],
      ],
    );
    assert.equal(store.removeAlias("A@Other.test"), true);
    assert.equal(store.removeAlias("a@other.test"), false);
    assert.equal(store.resolve("a@other.test"), undefined);
    store.close();
  });

  test("maySendAs: own address, aliases, exact senders and @domain senders, case-insensitive", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    await store.addAccount("bob@example.test", PW);
    store.addAlias("sales@example.test", "alice@example.test");
    store.addSender("alice@example.test", "Alice.Smith@Gmail.example");
    store.addSender("alice@example.test", "@Corp.Example");
    assert.throws(() => store.addSender("alice@example.test", "@corp.example"), /may already send as @corp.example/);
    assert.throws(() => store.addSender("nobody@example.test", "x@corp.example"), /no such account/);
    assert.throws(() => store.addSender("alice@example.test", "@corp..example"), AccountError);
    assert.throws(() => store.addSender("alice@example.test", "a%b@corp.example"), AccountError);

    const yes: [string, string][] = [
      ["alice@example.test", "alice@example.test"],
      ["ALICE@example.test", "Alice@Example.Test"],
      ["alice@example.test", "SALES@example.test"],
      ["alice@example.test", "alice.smith@gmail.example"],
      ["alice@example.test", "anyone@corp.example"],
      ["alice@example.test", "Someone.Else@CORP.example"],
    ];
    const no: [string, string][] = [
      ["alice@example.test", "bob@example.test"],
      ["bob@example.test", "alice@example.test"],
      ["bob@example.test", "sales@example.test"],
      ["bob@example.test", "anyone@corp.example"],
      ["alice@example.test", "anyone@sub.corp.example"],
      ["alice@example.test", "other@gmail.example"],
      ["alice@example.test", ""],
      ["alice@example.test", "x@corp.example.evil"],
      ["sales@example.test", "sales@example.test"], // an alias is not an account
      ["nobody@example.test", "nobody@example.test"],
      ["alice@example.test", "a%b@corp.example"],
    ];
    for (const [acct, addr] of yes) assert.equal(store.maySendAs(acct, addr), true, `${acct} as ${addr}`);
    for (const [acct, addr] of no) assert.equal(store.maySendAs(acct, addr), false, `${acct} as ${addr}`);

    assert.deepEqual(store.get("alice@example.test")?.senders, ["@corp.example", "alice.smith@gmail.example"]);
    assert.equal(store.removeSender("alice@example.test", "@CORP.example"), true);
    assert.equal(store.removeSender("alice@example.test", "@corp.example"), false);
    assert.equal(store.maySendAs("alice@example.test", "anyone@corp.example"), false);
    store.close();
  });

  test("removeAccount takes its aliases, senders and app passwords along", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    store.addSender("alice@example.test", "@corp.example");
    const secret = await store.addAppPassword("alice@example.test", "phone");
    assert.equal(store.removeAccount("ALICE@example.test"), true);
    assert.equal(store.removeAccount("alice@example.test"), false);
    assert.equal(store.resolve("alice@example.test"), undefined);
    assert.equal(store.resolve("al@example.test"), undefined);
    assert.equal(await store.checkPassword("alice@example.test", PW), undefined);
    assert.equal(await store.checkPassword("alice@example.test", secret), undefined);
    assert.equal(store.scramCredentials("alice@example.test"), undefined);
    for (const table of ["accounts", "aliases", "senders", "app_passwords"]) {
      assert.equal(store.db.prepare(`SELECT count(*) AS n FROM ${table}`).get()?.n, 0, table);
    }
    // The address is free again, also as an alias.
    await store.addAccount("bob@example.test", PW);
    store.addAlias("alice@example.test", "bob@example.test");
    store.close();
  });
});

describe("passwords", () => {
  test("checkPassword: right, wrong, unknown user, alias as user name, any case", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    assert.equal(await store.checkPassword("alice@example.test", PW), "alice@example.test");
    assert.equal(await store.checkPassword("ALICE@Example.TEST", PW), "alice@example.test");
    assert.equal(await store.checkPassword("Al@example.test", PW), "alice@example.test");
    assert.equal(await store.checkPassword("alice@example.test", PW.toUpperCase()), undefined);
    assert.equal(await store.checkPassword("alice@example.test", PW + " "), undefined);
    assert.equal(await store.checkPassword("alice@example.test", ""), undefined);
    assert.equal(await store.checkPassword("nobody@example.test", PW), undefined);
    assert.equal(await store.checkPassword("alice", PW), undefined);
    assert.equal(await store.checkPassword("alice@example.test", "x".repeat(5000)), undefined);
    store.close();
  });

  test("the password itself is stored nowhere; the hash is argon2id", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    const row = store.db.prepare("SELECT * FROM accounts").get() ?? {};
    assert.match(String(row.password), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    for (const v of Object.values(row)) {
      const text = v instanceof Uint8Array ? Buffer.from(v).toString("latin1") : String(v);
      assert.ok(!text.includes(PW), "password not stored");
    }
    store.close();
  });

  test("password rules: at least 8 characters, at most 1024 bytes, no NUL/CR/LF", async () => {
    const { store } = fresh();
    for (const bad of ["", "short", "1234567", "x".repeat(1025), "abcdefgh\n", "abcd\refgh", "abcd\0efgh", "é".repeat(513)]) {
      await assert.rejects(store.addAccount("alice@example.test", bad), AccountError, JSON.stringify(bad.slice(0, 20)));
    }
    assert.equal(store.resolve("alice@example.test"), undefined);
    await store.addAccount("alice@example.test", "ççççççç€"); // 8 characters
    assert.equal(await store.checkPassword("alice@example.test", "ççççççç€"), "alice@example.test");
    await assert.rejects(store.setPassword("alice@example.test", "short"), /too short/);
    await assert.rejects(store.setPassword("nobody@example.test", PW), /no such account/);
    store.close();
  });

  test("setPassword: the old one stops working, the new one works", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    const before = store.scramCredentials("alice@example.test");
    assert.deepEqual(await store.setPassword("alice@example.test", "new password 2"), []);
    assert.equal(await store.checkPassword("alice@example.test", PW), undefined);
    assert.equal(await store.checkPassword("alice@example.test", "new password 2"), "alice@example.test");
    const afterCreds = store.scramCredentials("alice@example.test");
    assert.ok(before && afterCreds);
    assert.ok(!before.salt.equals(afterCreds.salt), "a new SCRAM salt");
    store.close();
  });

  test("disabled accounts cannot log in; enabling restores", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    const secret = await store.addAppPassword("alice@example.test", "phone");
    assert.equal(store.setDisabled("alice@example.test", true), true);
    assert.equal(store.get("alice@example.test")?.disabled, true);
    assert.equal(await store.checkPassword("alice@example.test", PW), undefined);
    assert.equal(await store.checkPassword("al@example.test", PW), undefined);
    assert.equal(await store.checkPassword("alice@example.test", secret), undefined);
    assert.equal(store.scramCredentials("alice@example.test"), undefined);
    assert.equal(store.resolve("al@example.test"), "alice@example.test", "mail still resolves");
    assert.equal(store.setDisabled("alice@example.test", false), true);
    assert.equal(await store.checkPassword("alice@example.test", PW), "alice@example.test");
    assert.equal(store.setDisabled("nobody@example.test", true), false);
    store.close();
  });
});

describe("app passwords", () => {
  test("generated secrets: 4 groups of 4 lowercase letters or digits, all different", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = generateAppSecret();
      assert.match(s, /^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$/);
      seen.add(s);
    }
    assert.equal(seen.size, 200);
  });

  test("an app password logs in; remove and setPassword revoke it", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    const phone = await store.addAppPassword("alice@example.test", "phone");
    const laptop = await store.addAppPassword("ALICE@example.test", "laptop");
    assert.notEqual(phone, laptop);
    await assert.rejects(store.addAppPassword("alice@example.test", "Phone"), /app password named "Phone" already/);
    await assert.rejects(store.addAppPassword("alice@example.test", ""), /not a valid app password name/);
    await assert.rejects(store.addAppPassword("alice@example.test", "a\nb"), /not a valid app password name/);
    await assert.rejects(store.addAppPassword("al@example.test", "x"), /is an alias of alice@example.test/);
    await assert.rejects(store.addAppPassword("nobody@example.test", "x"), /no such account/);
    assert.deepEqual(
      store.get("alice@example.test")?.appPasswords.map((a) => a.name).sort(),
      ["laptop", "phone"],
    );
    const row = store.db.prepare("SELECT * FROM app_passwords WHERE name = 'phone'").get() ?? {};
    assert.ok(!Object.values(row).some((v) => String(v).includes(phone)), "the secret itself is not stored");

    assert.equal(await store.checkPassword("alice@example.test", phone), "alice@example.test");
    assert.equal(await store.checkPassword("al@example.test", laptop), "alice@example.test");
    assert.equal(await store.checkPassword("alice@example.test", PW), "alice@example.test", "the account password still works");
    assert.equal(await store.checkPassword("alice@example.test", phone.toUpperCase()), undefined);

    assert.equal(store.removeAppPassword("alice@example.test", "PHONE"), true);
    assert.equal(store.removeAppPassword("alice@example.test", "phone"), false);
    assert.equal(await store.checkPassword("alice@example.test", phone), undefined);
    assert.equal(await store.checkPassword("alice@example.test", laptop), "alice@example.test");

    assert.deepEqual(await store.setPassword("alice@example.test", "new password 2"), ["laptop"]);
    assert.equal(await store.checkPassword("alice@example.test", laptop), undefined);
    assert.deepEqual(store.get("alice@example.test")?.appPasswords, []);
    assert.equal(store.scramCredentials("alice@example.test")?.keys.length, 1);
    store.close();
  });

  test("an app password on another account does not log in to this one", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    await store.addAccount("bob@example.test", PW);
    const secret = await store.addAppPassword("bob@example.test", "phone");
    assert.equal(await store.checkPassword("alice@example.test", secret), undefined);
    assert.equal(await store.checkPassword("bob@example.test", secret), "bob@example.test");
    store.close();
  });
});

describe("scramCredentials", () => {
  test("keys match deriveScramKeys for the account password and each app password", async () => {
    const { store } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    const secret = await store.addAppPassword("alice@example.test", "phone");
    const creds = store.scramCredentials("AL@example.test");
    assert.ok(creds);
    assert.equal(creds.account, "alice@example.test");
    assert.equal(creds.iterations, 10_000);
    assert.equal(creds.salt.length, 16);
    assert.equal(creds.keys.length, 2);
    const mine = await deriveScramKeys(PW, creds.salt, creds.iterations);
    const app = await deriveScramKeys(secret, creds.salt, creds.iterations);
    assert.deepEqual(creds.keys[0], mine);
    assert.deepEqual(creds.keys[1], app);
    const wrong = await deriveScramKeys("wrong password", creds.salt, creds.iterations);
    assert.ok(!creds.keys.some((k) => k.storedKey.equals(wrong.storedKey)));
    assert.equal(store.scramCredentials("nobody@example.test"), undefined);
    assert.equal(store.scramCredentials("garbage"), undefined);
    store.close();
  });
});

describe("address validation", () => {
  const bad = [
    "",
    "plain",
    "@example.test",
    "a@",
    "a%b@example.test",
    "a!b@example.test",
    '"q"@example.test',
    "a@example.test.",
    "a..b@example.test",
    ".a@example.test",
    "a.@example.test",
    "a@b@example.test",
    "A@[127.0.0.1]",
    "a@127.0.0.1",
    "a b@example.test",
    "a@exa mple.test",
    "a@-example.test",
    "a@example-.test",
    "a@example..test",
    "a@.example.test",
    "a@exa_mple.test",
    "ä@example.test",
    "a@exämple.test",
    "a\u0000@example.test",
    "a\r\n@example.test",
    "x".repeat(65) + "@example.test",
    "a@" + "x".repeat(64) + ".test",
    "a(comment)@example.test",
    "a/b@example.test",
    "a=b@example.test",
    "<a@example.test>",
    "@relay.test:a@example.test",
  ];
  for (const addr of bad) {
    test(`refuses ${JSON.stringify(addr)}`, async () => {
      assert.throws(() => normalizeAddress(addr), AccountError);
      const { store } = fresh();
      await assert.rejects(store.addAccount(addr, PW), AccountError);
      assert.deepEqual(store.list(), []);
      store.close();
    });
  }

  test("refuses an account or alias outside the local domains; senders may be anywhere", async () => {
    const { store } = fresh();
    await assert.rejects(store.addAccount("a@elsewhere.test", PW), /a@elsewhere.test is not in a local domain \(add it to \[local\] domains\)/);
    await assert.rejects(store.addAccount("a@sub.example.test", PW), /not in a local domain/);
    await store.addAccount("a@example.test", PW);
    assert.throws(() => store.addAlias("b@elsewhere.test", "a@example.test"), /not in a local domain/);
    store.addSender("a@example.test", "b@elsewhere.test");
    assert.equal(store.maySendAs("a@example.test", "b@elsewhere.test"), true);
    store.close();
  });

  test("accepts and lowercases good addresses", () => {
    const good: [string, string][] = [
      ["Alice@Example.Test", "alice@example.test"],
      ["first.last@example.test", "first.last@example.test"],
      ["a+tag@example.test", "a+tag@example.test"],
      ["a_b-c@x-y.example.test", "a_b-c@x-y.example.test"],
      ["postmaster@localhost", "postmaster@localhost"],
      ["1@1a.test", "1@1a.test"],
      ["x".repeat(64) + "@example.test", "x".repeat(64) + "@example.test"],
    ];
    for (const [input, want] of good) assert.equal(normalizeAddress(input), want);
  });
});

describe("sharing the file", () => {
  test("persists across close and open", async () => {
    const { store, dataDir } = fresh();
    await store.addAccount("alice@example.test", PW);
    store.addAlias("al@example.test", "alice@example.test");
    store.addSender("alice@example.test", "@corp.example");
    const secret = await store.addAppPassword("alice@example.test", "phone");
    const listed = store.list();
    store.close();
    const again = AccountStore.open(dataDir, { create: false, localDomains: DOMAINS });
    assert.deepEqual(again.list(), listed);
    assert.equal(await again.checkPassword("al@example.test", PW), "alice@example.test");
    assert.equal(await again.checkPassword("alice@example.test", secret), "alice@example.test");
    assert.equal(again.maySendAs("alice@example.test", "x@corp.example"), true);
    again.close();
  });

  test("a second instance on the same file sees the first one's changes without reopening", async () => {
    const { store: writer, dataDir } = fresh();
    const reader = AccountStore.open(dataDir, { create: false, localDomains: DOMAINS });
    assert.equal(reader.resolve("alice@example.test"), undefined);
    await writer.addAccount("alice@example.test", PW);
    assert.equal(reader.resolve("alice@example.test"), "alice@example.test");
    assert.equal(await reader.checkPassword("alice@example.test", PW), "alice@example.test");
    writer.addAlias("al@example.test", "alice@example.test");
    assert.equal(reader.resolve("al@example.test"), "alice@example.test");
    const secret = await writer.addAppPassword("alice@example.test", "phone");
    assert.equal(reader.scramCredentials("alice@example.test")?.keys.length, 2);
    assert.equal(await reader.checkPassword("alice@example.test", secret), "alice@example.test");
    await writer.setPassword("alice@example.test", "new password 2");
    assert.equal(await reader.checkPassword("alice@example.test", PW), undefined);
    assert.equal(await reader.checkPassword("alice@example.test", secret), undefined);
    assert.equal(await reader.checkPassword("alice@example.test", "new password 2"), "alice@example.test");
    assert.equal(writer.removeAccount("alice@example.test"), true);
    assert.equal(reader.resolve("alice@example.test"), undefined);
    assert.equal(reader.scramCredentials("al@example.test"), undefined);
    reader.close();
    writer.close();
  });
});
