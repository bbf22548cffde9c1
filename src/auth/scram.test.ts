/**
 * SCRAM-SHA-256 and -PLUS server (scram.ts through createMechanism) against
 * a SCRAM client written here from the RFC 5802 §3 formulas: full
 * exchanges, the RFC 7677 §3 test vector, unknown users, channel binding
 * and downgrade, authzid, and every way a client message can be malformed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { createMechanism } from "./sasl.ts";
import type { MechanismOptions } from "./sasl.ts";
import { MAX_SASL_MESSAGE, ScramServer } from "./scram.ts";
import { deriveScramKeys, hmac, saltedPassword, SCRAM_ITERATIONS, sha256 } from "./scram-keys.ts";
import type { CredentialStore, SaslContext, SaslMechanism, SaslStep, ScramCredentials } from "./types.ts";

// ---- A tiny credential store: two accounts, alice with an app password, one alias. ----

interface TestAccount { readonly account: string; readonly names: readonly string[]; readonly secrets: readonly string[]; readonly salt: Buffer; readonly iterations: number }

const ACCOUNTS: TestAccount[] = [
  { account: "alice@example.org", names: ["alice@example.org", "postmaster@example.org"], secrets: ["alice pw", "alice-app-pw"], salt: randomBytes(16), iterations: SCRAM_ITERATIONS },
  { account: "bob@example.org", names: ["bob@example.org"], secrets: ["bob pw"], salt: randomBytes(16), iterations: SCRAM_ITERATIONS },
  // RFC 7677 §3's user.
  { account: "user", names: ["user"], secrets: ["pencil"], salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), iterations: 4096 },
];

const SCRAM: Map<string, ScramCredentials> = new Map();
for (const a of ACCOUNTS) {
  const keys = await Promise.all(a.secrets.map((s) => deriveScramKeys(s, a.salt, a.iterations)));
  for (const n of a.names) SCRAM.set(n, { account: a.account, salt: a.salt, iterations: a.iterations, keys });
}

/** Every name the mechanism looked up, to check what reaches the store. */
const lookups: string[] = [];
const store: CredentialStore = {
  checkPassword: (username, password) => {
    const a = ACCOUNTS.find((x) => x.names.includes(username.toLowerCase()));
    return Promise.resolve(a?.secrets.includes(password) ? a.account : undefined);
  },
  scramCredentials: (username) => {
    lookups.push(username);
    return SCRAM.get(username.toLowerCase());
  },
};

const FAKE_SALT_KEY = randomBytes(32);
const BINDING = randomBytes(32);
const ctx = (channelBinding: Buffer | undefined = undefined): SaslContext => ({ store, channelBinding, fakeSaltKey: FAKE_SALT_KEY });

// ---- A SCRAM client from RFC 5802 §3. ----

interface ClientOptions {
  /** gs2-cbind-flag: "n", "y" or "p=<name>". Default "n". */
  readonly flag?: string;
  /** Channel binding data the client appends for "p=". */
  readonly binding?: Buffer;
  readonly authzid?: string;
  readonly nonce?: string;
}

const escapeName = (name: string): string => name.replace(/=/g, "=3D").replace(/,/g, "=2C");
const b64 = (b: Buffer): string => b.toString("base64");

class ScramClient {
  readonly gs2Header: string;
  readonly bare: string;
  readonly #password: string;
  readonly #binding: Buffer | undefined;
  #serverSignature = "";

  constructor(username: string, password: string, o: ClientOptions = {}) {
    this.gs2Header = `${o.flag ?? "n"},${o.authzid === undefined ? "" : `a=${escapeName(o.authzid)}`},`;
    this.bare = `n=${escapeName(username)},r=${o.nonce ?? randomBytes(18).toString("base64")}`;
    this.#password = password;
    this.#binding = o.binding;
  }

  get first(): string {
    return this.gs2Header + this.bare;
  }

  /** client-final for this server-first; `edit` may tamper with the part without proof. */
  async final(serverFirst: string, edit: (withoutProof: string) => string = (s) => s): Promise<string> {
    const m = /^r=([^,]+),s=([^,]+),i=(\d+)$/.exec(serverFirst);
    assert.ok(m, `bad server-first ${serverFirst}`);
    const [, nonce = "", salt = "", iterations = ""] = m;
    const cbindInput = Buffer.concat([Buffer.from(this.gs2Header), this.#binding ?? Buffer.alloc(0)]);
    const withoutProof = edit(`c=${b64(cbindInput)},r=${nonce}`);
    const salted = await saltedPassword(this.#password, Buffer.from(salt, "base64"), Number(iterations));
    const clientKey = hmac(salted, "Client Key");
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const signature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.from(clientKey.map((byte, i) => byte ^ (signature[i] ?? 0)));
    this.#serverSignature = b64(hmac(hmac(salted, "Server Key"), authMessage));
    return `${withoutProof},p=${b64(proof)}`;
  }

  /** RFC 5802 §3: the client checks the server knew the ServerKey. */
  verifyServer(serverFinal: string): boolean {
    return serverFinal === `v=${this.#serverSignature}`;
  }
}

// ---- Helpers. ----

const text = (s: string): Buffer => Buffer.from(s, "utf8");

function challengeText(step: SaslStep): string {
  assert.equal(step.kind, "challenge", JSON.stringify(step));
  return step.kind === "challenge" ? step.data.toString("utf8") : "";
}

function mech(name: string, context: SaslContext, options?: MechanismOptions): SaslMechanism {
  const m = createMechanism(name, context, options);
  assert.ok(m, name);
  return m;
}

/** Runs a whole exchange; returns the outcome and what the server sent. */
async function exchange(client: ScramClient, o: { mechanism?: string; context?: SaslContext; edit?: (s: string) => string } = {}): Promise<{ result: SaslStep; serverFirst: string; verified: boolean }> {
  const m = mech(o.mechanism ?? "SCRAM-SHA-256", o.context ?? ctx());
  const first = await m.step(text(client.first));
  if (first.kind !== "challenge") return { result: first, serverFirst: "", verified: false };
  const serverFirst = first.data.toString();
  const final = await m.step(text(await client.final(serverFirst, o.edit)));
  if (final.kind !== "challenge") return { result: final, serverFirst, verified: false };
  const verified = client.verifyServer(final.data.toString());
  return { result: await m.step(Buffer.alloc(0)), serverFirst, verified };
}

const SERVER_FIRST = /^r=([!-+\--~]+),s=([A-Za-z0-9+/]{22}==),i=(\d+)$/;

// ---- Tests. ----

void test("RFC 7677 §3 test vector: the published client-final is accepted and the server signature matches", async () => {
  const m = mech("SCRAM-SHA-256", ctx(), { serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" });
  const serverFirst = await m.step(text("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
  assert.equal(challengeText(serverFirst), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  const serverFinal = await m.step(text("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
  assert.equal(challengeText(serverFinal), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  assert.deepEqual(await m.step(Buffer.alloc(0)), { kind: "success", account: "user" });
});

void test("RFC 7677 §3 test vector with a flipped proof bit fails with credentials", async () => {
  const m = mech("SCRAM-SHA-256", ctx(), { serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" });
  await m.step(text("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
  const r = await m.step(text("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU="));
  assert.deepEqual(r, { kind: "failure", reason: "credentials", user: "user" });
});

void test("full exchange: success with the canonical account, the client verifies the server", async () => {
  const { result, serverFirst, verified } = await exchange(new ScramClient("Alice@Example.ORG", "alice pw"));
  assert.deepEqual(result, { kind: "success", account: "alice@example.org" });
  assert.ok(verified);
  const alice = ACCOUNTS[0];
  assert.ok(alice);
  assert.equal(SERVER_FIRST.exec(serverFirst)?.[2], b64(alice.salt));
  assert.equal(SERVER_FIRST.exec(serverFirst)?.[3], String(SCRAM_ITERATIONS));
});

void test("an alias logs in to its account", async () => {
  const { result } = await exchange(new ScramClient("postmaster@example.org", "alice pw"));
  assert.deepEqual(result, { kind: "success", account: "alice@example.org" });
});

void test("no initial response: an empty challenge first, then the exchange goes on", async () => {
  const client = new ScramClient("bob@example.org", "bob pw");
  const m = mech("scram-sha-256", ctx());
  assert.equal(challengeText(await m.step(undefined)), "");
  const serverFirst = challengeText(await m.step(text(client.first)));
  assert.ok(client.verifyServer(challengeText(await m.step(text(await client.final(serverFirst))))), "server signature");
  assert.deepEqual(await m.step(Buffer.alloc(0)), { kind: "success", account: "bob@example.org" });
});

void test("the server nonce extends the client's with 32 fresh base64 characters", async () => {
  const nonces = [];
  for (let i = 0; i < 2; i++) {
    const r = challengeText(await mech("SCRAM-SHA-256", ctx()).step(text("n,,n=bob@example.org,r=abc")));
    const nonce = SERVER_FIRST.exec(r)?.[1] ?? "";
    assert.match(nonce, /^abc[A-Za-z0-9+/]{32}$/);
    nonces.push(nonce);
  }
  assert.notEqual(nonces[0], nonces[1]);
});

void test("wrong password fails with credentials and names the user", async () => {
  const { result, verified } = await exchange(new ScramClient("alice@example.org", "alice-pw"));
  assert.deepEqual(result, { kind: "failure", reason: "credentials", user: "alice@example.org" });
  assert.equal(verified, false);
  // Another account's password is no better.
  assert.equal((await exchange(new ScramClient("alice@example.org", "bob pw"))).result.kind, "failure");
});

void test("an app password works through SCRAM, and the server signs with its ServerKey", async () => {
  const { result, verified } = await exchange(new ScramClient("alice@example.org", "alice-app-pw"));
  assert.deepEqual(result, { kind: "success", account: "alice@example.org" });
  assert.ok(verified);
});

void test("unknown user: a server-first of the same shape, a stable per-user fake salt, failure at the proof", async () => {
  const known = (await exchange(new ScramClient("bob@example.org", "x"))).serverFirst;
  const a = await exchange(new ScramClient("nobody@example.org", "x"));
  const b = await exchange(new ScramClient("NoBody@Example.org", "y"));
  const other = await exchange(new ScramClient("somebody@example.org", "x"));
  for (const r of [a, b, other]) {
    assert.deepEqual(r.result, { kind: "failure", reason: "credentials", user: r === b ? "NoBody@Example.org" : r === a ? "nobody@example.org" : "somebody@example.org" });
  }
  const [ka, sa, ia] = [SERVER_FIRST.exec(known), SERVER_FIRST.exec(a.serverFirst), SERVER_FIRST.exec(b.serverFirst)];
  assert.ok(ka && sa && ia, `${known} / ${a.serverFirst} / ${b.serverFirst}`);
  assert.equal(sa[1]?.length, ka[1]?.length);
  assert.equal(sa[3], ka[3]);
  assert.equal(sa[2], ia[2], "same salt on every attempt, any case");
  assert.notEqual(sa[2], SERVER_FIRST.exec(other.serverFirst)?.[2], "different users, different salts");
  assert.equal(sa[2], b64(hmac(FAKE_SALT_KEY, "nobody@example.org").subarray(0, 16)));
});

void test("-PLUS with the connection's tls-exporter binding succeeds", async () => {
  const client = new ScramClient("alice@example.org", "alice pw", { flag: "p=tls-exporter", binding: BINDING });
  const { result, verified } = await exchange(client, { mechanism: "SCRAM-SHA-256-PLUS", context: ctx(BINDING) });
  assert.deepEqual(result, { kind: "success", account: "alice@example.org" });
  assert.ok(verified);
});

void test("-PLUS with other binding data (a man in the middle) fails with channel-binding", async () => {
  const client = new ScramClient("alice@example.org", "alice pw", { flag: "p=tls-exporter", binding: randomBytes(32) });
  const { result } = await exchange(client, { mechanism: "SCRAM-SHA-256-PLUS", context: ctx(BINDING) });
  assert.deepEqual(result, { kind: "failure", reason: "channel-binding" });
  // Binding data left out entirely.
  const bare = new ScramClient("alice@example.org", "alice pw", { flag: "p=tls-exporter" });
  assert.deepEqual((await exchange(bare, { mechanism: "SCRAM-SHA-256-PLUS", context: ctx(BINDING) })).result, { kind: "failure", reason: "channel-binding" });
});

void test("-PLUS refuses any flag but p=tls-exporter", async () => {
  for (const flag of ["n", "y", "p=tls-unique", "p=tls-server-end-point", "p=TLS-EXPORTER"]) {
    const client = new ScramClient("alice@example.org", "alice pw", { flag, binding: BINDING });
    assert.deepEqual((await exchange(client, { mechanism: "SCRAM-SHA-256-PLUS", context: ctx(BINDING) })).result, { kind: "failure", reason: "channel-binding" }, flag);
  }
});

void test("-PLUS built without binding data (not through createMechanism) fails safe", async () => {
  const m = new ScramServer(ctx(), true);
  assert.deepEqual(await m.step(text("p=tls-exporter,,n=alice@example.org,r=abc")), { kind: "failure", reason: "channel-binding" });
});

void test("SCRAM-SHA-256 with \"y\": a downgrade when we offer -PLUS, fine when we cannot", async () => {
  const client = (): ScramClient => new ScramClient("alice@example.org", "alice pw", { flag: "y" });
  assert.deepEqual((await exchange(client(), { context: ctx(BINDING) })).result, { kind: "failure", reason: "channel-binding" });
  assert.deepEqual((await exchange(client(), { context: ctx() })).result, { kind: "success", account: "alice@example.org" });
  // "n" (the client cannot bind) is fine either way.
  assert.deepEqual((await exchange(new ScramClient("alice@example.org", "alice pw"), { context: ctx(BINDING) })).result, { kind: "success", account: "alice@example.org" });
});

void test("SCRAM-SHA-256 refuses p= (binding needs the -PLUS name)", async () => {
  const client = new ScramClient("alice@example.org", "alice pw", { flag: "p=tls-exporter", binding: BINDING });
  assert.deepEqual((await exchange(client, { context: ctx(BINDING) })).result, { kind: "failure", reason: "channel-binding" });
});

void test("a c= that does not repeat the gs2-header fails with channel-binding", async () => {
  // The client sent "y,," (stripped -PLUS?) but c= claims "n,,": the header was altered.
  const client = new ScramClient("alice@example.org", "alice pw", { flag: "y" });
  const { result } = await exchange(client, { edit: (s) => s.replace(/^c=[^,]*/, "c=biws") });
  assert.deepEqual(result, { kind: "failure", reason: "channel-binding" });
});

void test("authzid: self, same name in another case, or the account is fine; anyone else is refused after the proof", async () => {
  for (const authzid of ["alice@example.org", "ALICE@example.org"]) {
    const { result } = await exchange(new ScramClient("alice@example.org", "alice pw", { authzid }));
    assert.deepEqual(result, { kind: "success", account: "alice@example.org" }, authzid);
  }
  // Logged in through an alias: acting as the alias itself or as its account.
  for (const authzid of ["alice@example.org", "POSTMASTER@example.org"]) {
    const viaAlias = await exchange(new ScramClient("postmaster@example.org", "alice pw", { authzid }));
    assert.deepEqual(viaAlias.result, { kind: "success", account: "alice@example.org" }, authzid);
  }
  const other = await exchange(new ScramClient("alice@example.org", "alice pw", { authzid: "bob@example.org" }));
  assert.deepEqual(other.result, { kind: "failure", reason: "authzid", user: "alice@example.org" });
  // Names are compared, aliases not resolved: another alias of the same account is someone else.
  const alias = await exchange(new ScramClient("alice@example.org", "alice pw", { authzid: "postmaster@example.org" }));
  assert.deepEqual(alias.result, { kind: "failure", reason: "authzid", user: "alice@example.org" });
  // With a wrong password the authzid is never judged.
  const both = await exchange(new ScramClient("alice@example.org", "wrong", { authzid: "bob@example.org" }));
  assert.deepEqual(both.result, { kind: "failure", reason: "credentials", user: "alice@example.org" });
});

void test("names with escaped ',' and '=' reach the store decoded", async () => {
  lookups.length = 0;
  const { result } = await exchange(new ScramClient("we,ird=name@example.org", "x", { authzid: "we,ird=name@example.org" }));
  assert.deepEqual(result, { kind: "failure", reason: "credentials", user: "we,ird=name@example.org" });
  assert.deepEqual(lookups, ["we,ird=name@example.org"]);
  // The lowercase escapes are the same (ABNF literals ignore case).
  lookups.length = 0;
  assert.equal((await mech("SCRAM-SHA-256", ctx()).step(text("n,,n=a=2cb=3dc,r=abc"))).kind, "challenge");
  assert.deepEqual(lookups, ["a,b=c"]);
});

void test("a tampered nonce fails with malformed", async () => {
  const { result } = await exchange(new ScramClient("alice@example.org", "alice pw"), { edit: (s) => s.replace(/.$/, (c) => (c === "X" ? "Y" : "X")) });
  assert.deepEqual(result, { kind: "failure", reason: "malformed" });
  const short = await exchange(new ScramClient("alice@example.org", "alice pw", { nonce: "cnonce" }), { edit: (s) => s.replace(/,r=.*$/, ",r=cnonce") });
  assert.deepEqual(short.result, { kind: "failure", reason: "malformed" });
});

void test("malformed client-first messages", async () => {
  const bad: (string | Buffer)[] = [
    "", "n", "n,", "n,,", "x,,n=u,r=abc", "p=,,n=u,r=abc", "p=tls_exporter,,n=u,r=abc", "N,,n=u,r=abc",
    "n,a,n=u,r=abc", "n,a=,n=u,r=abc", "n,b=u,n=u,r=abc", "n,a=x=41,n=u,r=abc",
    "n,,m=ext,n=u,r=abc", "n,,m=u,r=abc", "n,,x=u,r=abc", "n,,N=u,r=abc", "n,,n=,r=abc", "n,,n=a=41,r=abc", "n,,n=a=,r=abc", "n,,n=u\0,r=abc", "n,,r=abc,n=u", "n,,n=u",
    "n,,n=u,r=", "n,,n=u,r=a b", "n,,n=u,r=ab\u00e9", "n,,n=u,x=abc", "n,,n=u,r=abc,", "n,,n=u,r=abc,bad", "n,,n=u,r=abc,xy=1", "n,,n=u,r=abc,x=",
    `n,,n=${"a".repeat(256)},r=abc`, `n,,n=u,r=${"a".repeat(MAX_SASL_MESSAGE)}`,
    Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xc3, 0x28, 0x2c, 0x72, 0x3d, 0x61]), // n,,n=<bad UTF-8>,r=a
  ];
  for (const msg of bad) {
    const r = await mech("SCRAM-SHA-256", ctx()).step(typeof msg === "string" ? text(msg) : msg);
    assert.deepEqual(r, { kind: "failure", reason: "malformed" }, JSON.stringify(msg.toString()));
  }
  // The edges that are fine: extensions, a 255-byte name, UTF-8 in names.
  for (const ok of ["n,,n=u,r=abc,x=ext", `n,,n=${"a".repeat(255)},r=abc`, "n,a=j\u00f6rg,n=j\u00f6rg,r=a", "y,,n=u,r=!+-~"]) {
    assert.equal((await mech("SCRAM-SHA-256", ctx()).step(text(ok))).kind, "challenge", ok);
  }
});

/** The base64 digit with the same top four bits as `digit` and the bottom two (unused before "=") set. */
const nonCanonical = (digit: string): string => {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return A[A.indexOf(digit) | 3] ?? "";
};

void test("malformed client-final messages", async () => {
  const cases: ((withoutProof: string, proof: string) => string)[] = [
    () => "",
    (w) => w, // no proof
    (w, p) => `${w},p=${p.slice(0, -4)}`, // 29-byte proof
    (w, p) => `${w},p=${p}AAAA`, // 35 bytes
    (w, p) => `${w},p=${p.replace(/=$/, "")}`, // unpadded
    (w, p) => `${w},p=${p.slice(0, 42)}${nonCanonical(p.slice(42, 43))}=`, // same bytes, unused bits set
    (w, p) => `${w},p=${p.slice(0, 10)}!${p.slice(11)}`, // not base64
    (w, p) => `${w},p=${p},x=y`, // proof not last
    (w, p) => `${w.split(",").reverse().join(",")},p=${p}`, // r= before c=
    (w, p) => `${w},bad,p=${p}`, // broken extension
    (w, p) => `${w.replace(/^c=/, "C=")},p=${p}`,
  ];
  for (const [i, make] of cases.entries()) {
    const client = new ScramClient("alice@example.org", "alice pw");
    const m = mech("SCRAM-SHA-256", ctx());
    const good = await client.final(challengeText(await m.step(text(client.first))));
    const at = good.lastIndexOf(",p=");
    const r = await m.step(text(make(good.slice(0, at), good.slice(at + 3))));
    assert.deepEqual(r, { kind: "failure", reason: "malformed" }, `case ${i}`);
  }
  // An extension before the proof is allowed (and signed like the rest).
  const { result } = await exchange(new ScramClient("alice@example.org", "alice pw"), { edit: (s) => `${s},x=ext` });
  assert.deepEqual(result, { kind: "success", account: "alice@example.org" });
});

void test("after server-final only an empty response succeeds; after the end every step is malformed", async () => {
  const client = new ScramClient("alice@example.org", "alice pw");
  const m = mech("SCRAM-SHA-256", ctx());
  const serverFirst = challengeText(await m.step(text(client.first)));
  challengeText(await m.step(text(await client.final(serverFirst))));
  assert.deepEqual(await m.step(text("v=x")), { kind: "failure", reason: "malformed" });
  assert.deepEqual(await m.step(Buffer.alloc(0)), { kind: "failure", reason: "malformed" });

  const done = mech("SCRAM-SHA-256", ctx());
  assert.equal((await done.step(text("n,,n=u"))).kind, "failure");
  assert.deepEqual(await done.step(text("n,,n=u,r=abc")), { kind: "failure", reason: "malformed" });
  // undefined is only meaningful as the first step.
  const twice = mech("SCRAM-SHA-256", ctx());
  await twice.step(undefined);
  assert.deepEqual(await twice.step(undefined), { kind: "failure", reason: "malformed" });
});

void test("the iteration count and salt come from the store", async () => {
  const serverFirst = challengeText(await mech("SCRAM-SHA-256", ctx()).step(text("n,,n=user,r=abc")));
  assert.match(serverFirst, /,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096$/);
});

void test("admit is asked once, with the user name, right before the proof is checked; refused, the right and a wrong proof fail alike", async () => {
  for (const allow of [true, false]) {
    const asked: string[] = [];
    const context: SaslContext = { ...ctx(), admit: (u) => (asked.push(u), allow) };
    const right = await exchange(new ScramClient("alice@example.org", "alice pw"), { context });
    const wrong = await exchange(new ScramClient("alice@example.org", "not it"), { context });
    assert.deepEqual(asked, ["alice@example.org", "alice@example.org"]);
    if (allow) {
      assert.deepEqual(right.result, { kind: "success", account: "alice@example.org" });
      assert.equal(wrong.result.kind, "failure");
    } else {
      assert.deepEqual(right.result, { kind: "failure", reason: "refused", user: "alice@example.org" });
      assert.deepEqual(wrong.result, right.result);
      assert.equal(right.verified, false);
    }
  }
  // A client-first that fails (a refused binding) never gets as far as admit.
  const asked: string[] = [];
  const context: SaslContext = { ...ctx(randomBytes(32)), admit: (u) => (asked.push(u), true) };
  assert.equal((await exchange(new ScramClient("alice@example.org", "alice pw", { flag: "y" }), { context })).result.kind, "failure");
  assert.deepEqual(asked, []);
});
