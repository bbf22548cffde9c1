/**
 * The sender-authentication check over mailauth, with DNS from an in-memory
 * zone: SPF at MAIL (pass, fail, HELO identity), DKIM pass with RSA-2048 and
 * Ed25519 signatures made here, rsa-sha1 and 512-bit keys not passing, DMARC
 * reject / quarantine / none by published policy and by operator override,
 * a trusted ARC sealer overriding a DMARC failure, our Authentication-
 * Results shape, and the runner's actions and fail-closed behaviour.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { dkimSign, sealMessage } from "mailauth";
import { CheckRunner, ConnectionState, TransactionState, type CheckInput } from "../policy/index.ts";
import { createLogger } from "../log/index.ts";
import { SenderAuthCheck } from "./check.ts";
import { authservIdOf, stripOwnHeaders } from "../message/index.ts";
import { VERDICT_DEFAULTS } from "../config/index.ts";

const log = createLogger({ level: "silent" });

function rsa(bits: number): { priv: string; p: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const der = publicKey.export({ type: "spki", format: "der" });
  return { priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), p: der.toString("base64") };
}
const ed = (() => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ type: "spki", format: "der" }).subarray(-32);
  return { priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), p: raw.toString("base64") };
})();
const rsa2048 = rsa(2048);
const rsa512 = rsa(512);
const sealer = rsa(2048);

const ZONE: Record<string, Record<string, unknown[]>> = {
  "good.test": { TXT: [["v=spf1 ip4:192.0.2.0/24 -all"]] },
  "mx.good.test": { TXT: [["v=spf1 ip4:192.0.2.0/24 -all"]], A: ["192.0.2.10"] },
  "_dmarc.good.test": { TXT: [["v=DMARC1; p=reject"]] },
  "_dmarc.multi.good.test": { TXT: [["v=DMARC1; p=reject"], ["v=DMARC1; p=quarantine"]] },
  "rsa._domainkey.good.test": { TXT: [[`v=DKIM1; k=rsa; p=${rsa2048.p}`]] },
  "ed._domainkey.good.test": { TXT: [[`v=DKIM1; k=ed25519; p=${ed.p}`]] },
  "weak._domainkey.good.test": { TXT: [[`v=DKIM1; k=rsa; p=${rsa512.p}`]] },
  "quar.test": { TXT: [["v=spf1 -all"]] },
  "_dmarc.quar.test": { TXT: [["v=DMARC1; p=quarantine"]] },
  "none.test": { TXT: [["v=spf1 -all"]] },
  "_dmarc.none.test": { TXT: [["v=DMARC1; p=none"]] },
  "arc._domainkey.list.test": { TXT: [[`v=DKIM1; k=rsa; p=${sealer.p}`]] },
  "rsa._domainkey.example.test": { TXT: [[`v=DKIM1; k=rsa; p=${rsa2048.p}`]] },
};

async function resolver(name: string, type: string): Promise<unknown> {
  const entry = ZONE[name.toLowerCase().replace(/\.$/, "")];
  const err = (code: string): Error => Object.assign(new Error(`${code} ${name}`), { code });
  if (!entry) throw err("ENOTFOUND");
  const rr = entry[type];
  if (!rr) throw err("ENODATA");
  return Promise.resolve(rr);
}

const AUTHSERV = "mx.wardmail.test";
const check = (over: Partial<ConstructorParameters<typeof SenderAuthCheck>[0]["checks"]> = {}): SenderAuthCheck =>
  new SenderAuthCheck({ resolver, authservId: AUTHSERV, checks: { trustedArcSealers: [], dmarcOverrides: {}, ...over } });

function message(from: string, extra = ""): Buffer {
  return Buffer.from(`${extra}From: ${from}\r\nTo: user@example.test\r\nSubject: hello\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nHello.\r\n`);
}

async function signed(msg: Buffer, signatures: { selector: string; privateKey: string; algorithm?: string }[], signingDomain = "good.test"): Promise<Buffer> {
  const r = await dkimSign(msg, { signingDomain, selector: "x", privateKey: "", signatureData: signatures.map((s) => ({ signingDomain, ...s })) } as never);
  assert.deepEqual(r.errors, []);
  return Buffer.concat([Buffer.from(r.signatures), msg]);
}

function input(over: Partial<CheckInput> & { content?: Buffer }, state = new TransactionState()): CheckInput {
  return { clientIp: "192.0.2.1", helo: "mx.good.test", mailFrom: "a@good.test", recipients: ["user@example.test"], state, signal: new AbortController().signal, ...over };
}

async function both(c: SenderAuthCheck, over: Partial<CheckInput>): Promise<{ mail: readonly string[]; data: readonly string[]; headers: readonly string[] }> {
  const state = new TransactionState();
  const m = await c.mail(input(over, state));
  const d = await c.data(input(over, state));
  return { mail: m.verdicts, data: d.verdicts, headers: d.headers ?? [] };
}

test("SPF at MAIL: evaluated once per sender and HELO per connection; temperror not kept", async () => {
  const asked: string[] = [];
  let failing = false;
  const counting = async (name: string, type: string): Promise<unknown> => {
    asked.push(`${type} ${name}`);
    if (failing) throw Object.assign(new Error("ETIMEOUT"), { code: "ETIMEOUT" });
    return resolver(name, type);
  };
  const c = new SenderAuthCheck({ resolver: counting, authservId: AUTHSERV, checks: { trustedArcSealers: [], dmarcOverrides: {} } });
  const connection = new ConnectionState();
  assert.deepEqual((await c.mail(input({ connection }))).verdicts, ["spf.pass"]);
  const first = asked.length;
  assert.ok(first >= 2, "MAIL FROM and HELO identities asked");
  // The next transaction on the connection: same identities, no new question, same result object.
  const state = new TransactionState();
  assert.deepEqual((await c.mail(input({ connection }, state))).verdicts, ["spf.pass"]);
  assert.equal(asked.length, first);
  // Another sender: its own evaluation (the HELO one is reused).
  assert.deepEqual((await c.mail(input({ connection, mailFrom: "b@quar.test" }))).verdicts, ["spf.fail"]);
  assert.ok(asked.length > first);
  assert.equal(asked.filter((a) => a === "TXT mx.good.test").length, 1, "the HELO identity is asked once per connection");
  // After five minutes the connection asks again (a long-lived connection sees DNS changes).
  const realNow = Date.now;
  try {
    const later = realNow() + 5 * 60_000 + 1;
    Date.now = () => later;
    const n = asked.length;
    await c.mail(input({ connection }));
    assert.ok(asked.length > n);
  } finally {
    Date.now = realNow;
  }
  // Another connection asks again.
  const before = asked.length;
  await c.mail(input({ connection: new ConnectionState() }));
  assert.ok(asked.length > before);
  // A temporary DNS failure is not kept for the rest of the connection.
  const flaky = new ConnectionState();
  failing = true;
  assert.deepEqual((await c.mail(input({ connection: flaky, mailFrom: "c@none.test" }))).verdicts, ["spf.temperror"]);
  failing = false;
  assert.deepEqual((await c.mail(input({ connection: flaky, mailFrom: "c@none.test" }))).verdicts, ["spf.fail"]);
});

test("SPF at MAIL: pass from the listed network, fail elsewhere; HELO identity in Authentication-Results", async () => {
  const c = check();
  assert.deepEqual((await c.mail(input({}))).verdicts, ["spf.pass"]);
  assert.deepEqual((await c.mail(input({ clientIp: "198.51.100.7" }))).verdicts, ["spf.fail"]);
  assert.deepEqual((await c.mail(input({ mailFrom: "a@unknown.test" }))).verdicts, ["spf.none"]);
  const r = await both(c, { content: await signed(message("a@good.test"), [{ selector: "rsa", privateKey: rsa2048.priv }]) });
  const ar = r.headers[0] ?? "";
  assert.match(ar, /^Authentication-Results: mx\.wardmail\.test;\r\n /);
  assert.match(ar, /spf=pass [^;]*smtp\.mailfrom=(a@)?good\.test;/);
  assert.match(ar, /spf=pass smtp\.helo=mx\.good\.test/);
  assert.match(r.headers[1] ?? "", /^Received-SPF: pass /);
});

test("DKIM: RSA-2048 and Ed25519 pass, DMARC passes aligned; a 512-bit key and rsa-sha1 do not pass", async () => {
  const c = check();
  const two = await both(c, { clientIp: "198.51.100.7", content: await signed(message("a@good.test"), [{ selector: "rsa", privateKey: rsa2048.priv }, { selector: "ed", privateKey: ed.priv, algorithm: "ed25519-sha256" }]) });
  assert.deepEqual(two.data, ["dkim.pass", "arc.none", "dmarc.pass"]);
  assert.equal((two.headers[0]?.match(/dkim=pass/g) ?? []).length, 2, two.headers[0]);
  const weak = await both(c, { clientIp: "198.51.100.7", content: await signed(message("a@good.test"), [{ selector: "weak", privateKey: rsa512.priv }]) });
  assert.notEqual(weak.data[0], "dkim.pass");
  assert.equal(weak.data[2], "dmarc.reject");
  const sha1 = await both(c, { clientIp: "198.51.100.7", content: await signed(message("a@good.test"), [{ selector: "rsa", privateKey: rsa2048.priv, algorithm: "rsa-sha1" }]) });
  assert.notEqual(sha1.data[0], "dkim.pass");
  assert.equal(sha1.data[2], "dmarc.reject");
});

test("DMARC: a spoofed From of a p=reject domain is dmarc.reject; quarantine and none by their policy; overrides", async () => {
  const c = check();
  const spoof = { clientIp: "198.51.100.7", mailFrom: "bounce@elsewhere.test" };
  assert.equal((await both(c, { ...spoof, content: message("ceo@good.test") })).data[2], "dmarc.reject");
  assert.equal((await both(c, { ...spoof, content: message("ceo@quar.test") })).data[2], "dmarc.quarantine");
  assert.equal((await both(c, { ...spoof, content: message("ceo@none.test") })).data[2], "dmarc.none");
  const o = check({ dmarcOverrides: { "good.test": "quarantine", "quar.test": "none" } });
  assert.equal((await both(o, { ...spoof, content: message("ceo@good.test") })).data[2], "dmarc.quarantine");
  const q = await both(o, { ...spoof, content: message("ceo@quar.test") });
  assert.equal(q.data[2], "dmarc.none");
  assert.match(q.headers[0] ?? "", /policy override none/);
  // A subdomain inherits good.test's p=reject by the tree walk; an override for the subdomain itself comes first.
  assert.equal((await both(c, { ...spoof, content: message("ceo@sub.good.test") })).data[2], "dmarc.reject");
  const sub = check({ dmarcOverrides: { "sub.good.test": "none", "good.test": "quarantine" } });
  assert.equal((await both(sub, { ...spoof, content: message("ceo@sub.good.test") })).data[2], "dmarc.none");
  assert.equal((await both(sub, { ...spoof, content: message("ceo@other.good.test") })).data[2], "dmarc.quarantine");
});

/** A message with the given header lines (CRLF-joined) on top of To/Subject, and a body. */
function raw(head: string): Buffer {
  return Buffer.from(`${head}\r\nTo: user@example.test\r\nSubject: hello\r\n\r\nHello.\r\n`);
}

test("no single author: every variant gets a from.* verdict and DMARC for every author domain, the strictest wins", async () => {
  const c = check();
  const spoof = { clientIp: "198.51.100.7", mailFrom: "bounce@elsewhere.test" };
  const cases: [string, string[]][] = [
    ["From: me@none.test\r\nFrom: ceo@good.test", ["from.duplicate", "dmarc.reject"]],
    ["From: ceo@good.test\r\nFrom: me@none.test", ["from.duplicate", "dmarc.reject"]],
    ["From: me@none.test, Bank <ceo@good.test>", ["from.multiple_domains", "dmarc.reject"]],
    ["From: Friends: me@none.test, ceo@good.test;", ["from.multiple_domains", "dmarc.reject"]],
    ["From:\r\nFrom: ceo@good.test", ["from.duplicate", "dmarc.reject"]],
    ["From: =?utf-8?Q?ceo=40good=2Etest?=", ["from.invalid", "dmarc.permerror"]],
    ["\uFEFFFrom: ceo@good.test", ["from.invalid", "dmarc.reject"]],
    ["\uFEFFFrom: me@none.test\r\nSender: ceo@good.test", ["from.invalid", "dmarc.none"]],
    ["From: me@none.test\r\n\uFEFFFrom: ceo@good.test", ["from.duplicate", "dmarc.reject"]],
    ["Sender: ceo@good.test", ["from.missing", "dmarc.permerror"]],
    ["From: ceo", ["from.invalid", "dmarc.permerror"]],
    ["From: <>", ["from.invalid", "dmarc.permerror"]],
    ["From: Bank of Test", ["from.invalid", "dmarc.permerror"]],
    ["From: a@none.test, b@quar.test", ["from.multiple_domains", "dmarc.quarantine"]],
  ];
  for (const [head, want] of cases) {
    const r = await both(c, { ...spoof, content: raw(head) });
    assert.deepEqual(r.data.slice(2), want, head);
    if (want.includes("dmarc.permerror")) assert.match(r.headers[0] ?? "", /dmarc=permerror \(/, head);
  }
  // Each author domain has its own dmarc resinfo.
  const two = await both(c, { ...spoof, content: raw("From: a@none.test, b@good.test") });
  assert.match(two.headers[0] ?? "", /dmarc=none[^;]*header\.from=none\.test;[\s\S]*dmarc=fail[^;]*header\.from=good\.test/);
  // The runner's replies: 5.6.0 for a malformed From:, 5.7.1 for several author domains.
  const runner = new CheckRunner([c], VERDICT_DEFAULTS, 5000);
  assert.equal(runner.decide(["from.invalid", "dmarc.permerror"]).reply?.status, "5.6.0");
  assert.equal(runner.decide(["from.missing", "dmarc.permerror"]).reply?.status, "5.6.0");
  assert.equal(runner.decide(["from.duplicate", "dmarc.reject"]).reply?.status, "5.6.0");
  assert.equal(runner.decide(["from.multiple_domains", "dmarc.none"]).reply?.status, "5.7.1");
  // With the from.* verdicts relaxed, each domain's policy still applies.
  const relaxed = new CheckRunner([c], { ...VERDICT_DEFAULTS, "from.multiple_domains": "tag", "from.duplicate": "tag" }, 5000);
  assert.equal(relaxed.decide(["from.duplicate", "dmarc.reject"]).action, "reject");
  assert.equal(relaxed.decide(["dmarc.none", "from.multiple_domains"]).action, "tag");
});

test("our own domains from outside: MAIL FROM needs SPF pass, From: needs DMARC pass or an aligned DKIM/SPF pass", async () => {
  const local = new SenderAuthCheck({ resolver, authservId: AUTHSERV, checks: { trustedArcSealers: [], dmarcOverrides: {} }, localDomains: ["good.test", "none.test", "Example.TEST"] });
  // MAIL FROM in a local domain from a client its SPF does not list; from a listed one; a domain without SPF.
  assert.deepEqual((await local.mail(input({ clientIp: "198.51.100.7" }))).verdicts, ["spf.fail", "local.mail_from"]);
  assert.deepEqual((await local.mail(input({}))).verdicts, ["spf.pass"]);
  assert.deepEqual((await local.mail(input({ mailFrom: "x@example.test" }))).verdicts, ["spf.none", "local.mail_from"]);
  assert.deepEqual((await local.mail(input({ mailFrom: "" }))).verdicts.filter((v) => v.startsWith("local.")), []);
  // From: a local domain with p=none (DMARC fails, no signature): local.from even though DMARC says none.
  const spoof = { clientIp: "198.51.100.7", mailFrom: "bounce@elsewhere.test" };
  assert.deepEqual((await both(local, { ...spoof, content: message("ceo@none.test") })).data.slice(2), ["dmarc.none", "local.from"]);
  // No DMARC record at all.
  assert.deepEqual((await both(local, { ...spoof, content: message("ceo@example.test") })).data.slice(2), ["dmarc.none", "local.from"]);
  // Signed by the domain: accepted.
  const ok = await both(local, { ...spoof, content: await signed(message("a@good.test"), [{ selector: "rsa", privateKey: rsa2048.priv }]) });
  assert.deepEqual(ok.data, ["dkim.pass", "arc.none", "dmarc.pass"]);
  // The runner refuses with 5.7.1.
  assert.equal(new CheckRunner([local], VERDICT_DEFAULTS, 5000).decide(["spf.fail", "local.mail_from"]).reply?.status, "5.7.1");
  // A subdomain of ours is ours too (a reader trusts it as much): MAIL FROM and From:.
  assert.deepEqual((await local.mail(input({ mailFrom: "x@mail.Example.test" }))).verdicts, ["spf.none", "local.mail_from"]);
  assert.deepEqual((await local.mail(input({ mailFrom: "x@notexample.test" }))).verdicts, ["spf.none"]);
  assert.deepEqual((await both(local, { ...spoof, content: message("it@mail.example.test") })).data.slice(2), ["dmarc.none", "local.from"]);
  assert.deepEqual((await both(local, { ...spoof, content: message("it@notexample.test") })).data.slice(2), ["dmarc.none"]);
  // A subdomain signed by its parent domain of ours (relaxed alignment): accepted.
  const sub = await both(local, { ...spoof, content: await signed(message("a@sub.good.test"), [{ selector: "rsa", privateKey: rsa2048.priv }]) });
  assert.deepEqual(sub.data, ["dkim.pass", "arc.none", "dmarc.pass"]);
  // Without a DMARC record: a signature of our parent domain vouches for its subdomain, a foreign one does not.
  const parent = await both(local, { ...spoof, content: await signed(message("it@mail.example.test"), [{ selector: "rsa", privateKey: rsa2048.priv }], "example.test") });
  assert.deepEqual(parent.data, ["dkim.pass", "arc.none", "dmarc.none"]);
  const foreign = await both(local, { ...spoof, content: await signed(message("it@mail.example.test"), [{ selector: "rsa", privateKey: rsa2048.priv }]) });
  assert.deepEqual(foreign.data, ["dkim.pass", "arc.none", "dmarc.none", "local.from"]);
  // A name that shows a reader an address of ours while the address is elsewhere: local.from_name (quarantine by default).
  const named = async (from: string): Promise<readonly string[]> => (await both(local, { ...spoof, content: message(from) })).data.slice(2);
  assert.deepEqual(await named('"ceo@example.test" <x@elsewhere.test>'), ["dmarc.none", "local.from_name"]);
  assert.deepEqual(await named("=?utf-8?q?ceo=40example.test?= <x@elsewhere.test>"), ["dmarc.none", "local.from_name"]);
  assert.deepEqual(await named('"ceo\uFF20Example\u3002test" <x@elsewhere.test>'), ["dmarc.none", "local.from_name"]);
  assert.deepEqual(await named("x@elsewhere.test (ceo@mail.example.test)"), ["dmarc.none", "local.from_name"]);
  assert.deepEqual(await named('"ceo@elsewhere.test" <x@elsewhere.test>'), ["dmarc.none"]);
  assert.deepEqual(await named('"The CEO" <x@elsewhere.test>'), ["dmarc.none"]);
  assert.equal(new CheckRunner([local], VERDICT_DEFAULTS, 5000).decide(["dmarc.none", "local.from_name"]).action, "quarantine");
  // Without local domains (the default check), nothing of the kind.
  assert.deepEqual((await check().mail(input({ clientIp: "198.51.100.7" }))).verdicts, ["spf.fail"]);
});

test("DMARC: two DMARC records at the author domain: no policy (RFC 7489 §6.6.3), not the parent's", async () => {
  const r = await both(check(), { clientIp: "198.51.100.7", mailFrom: "bounce@elsewhere.test", content: message("ceo@multi.good.test") });
  assert.equal(r.data[2], "dmarc.none");
  assert.match(r.headers[0] ?? "", /dmarc=none/);
  // Trailing dots on the From: domain are not a domain name (RFC 5322 dot-atom): an invalid From:, never a quiet none.
  const dots = await both(check(), { clientIp: "198.51.100.7", mailFrom: "bounce@elsewhere.test", content: message("ceo@multi.good.test..") });
  assert.deepEqual(dots.data.slice(2), ["from.invalid", "dmarc.permerror"]);
});

test("a passing ARC chain sealed by a trusted sealer that saw dmarc=pass overrides a DMARC failure", async () => {
  // A list server received good.test's mail (dmarc=pass there), changed it, and sealed it.
  const original = message("ceo@good.test", "List-Id: <l.list.test>\r\n");
  const sealed = await sealMessage(original, {
    signingDomain: "list.test", selector: "arc", privateKey: sealer.priv, cv: "none",
    authResults: "list.test; dkim=pass header.d=good.test; spf=pass smtp.mailfrom=good.test; dmarc=pass header.from=good.test",
  });
  const content = Buffer.concat([sealed, original]);
  const spoof = { clientIp: "198.51.100.7", mailFrom: "bounce@list.test" };
  const untrusted = await both(check(), { ...spoof, content });
  assert.deepEqual(untrusted.data.slice(1), ["arc.pass", "dmarc.reject"]);
  const trusted = await both(check({ trustedArcSealers: ["list.test"] }), { ...spoof, content });
  assert.deepEqual(trusted.data.slice(1), ["arc.pass", "dmarc.none"]);
  assert.match(trusted.headers[0] ?? "", /overridden by trusted ARC sealer list\.test/);
  // Our own domain through a trusted list (our user wrote to it): not refused as an own-domain spoof.
  const ours = (sealers: string[]): SenderAuthCheck =>
    new SenderAuthCheck({ resolver, authservId: AUTHSERV, checks: { trustedArcSealers: sealers, dmarcOverrides: {} }, localDomains: ["good.test"] });
  assert.deepEqual((await both(ours(["list.test"]), { ...spoof, content })).data.slice(1), ["arc.pass", "dmarc.none"]);
  assert.deepEqual((await both(ours([]), { ...spoof, content })).data.slice(1), ["arc.pass", "dmarc.reject", "local.from"]);
  // A trusted list that shows our user's address in the name ("'alice@good.test' via List"): not local.from_name.
  const viaOriginal = message(`"'ceo@good.test' via List" <l@list.test>`, "List-Id: <l.list.test>\r\n");
  const viaSeal = await sealMessage(viaOriginal, {
    signingDomain: "list.test", selector: "arc", privateKey: sealer.priv, cv: "none",
    authResults: "list.test; dkim=pass header.d=good.test; spf=pass smtp.mailfrom=good.test; dmarc=pass header.from=good.test",
  });
  const via = Buffer.concat([viaSeal, viaOriginal]);
  assert.ok(!(await both(ours(["list.test"]), { ...spoof, content: via })).data.includes("local.from_name"));
  assert.ok((await both(ours([]), { ...spoof, content: via })).data.includes("local.from_name"));
});

test("a message forwarded to another domain is ARC-sealed; the next hop validates our seal", async () => {
  const fwd = rsa(2048);
  ZONE["seal._domainkey.wardmail.test"] = { TXT: [[`v=DKIM1; k=rsa; p=${fwd.p}`]] };
  const c = new SenderAuthCheck({ resolver, authservId: AUTHSERV, checks: { trustedArcSealers: [], dmarcOverrides: {} }, seal: { domain: "wardmail.test", selector: "seal", privateKey: fwd.priv } });
  const content = await signed(message("a@good.test"), [{ selector: "rsa", privateKey: rsa2048.priv }]);
  const state = new TransactionState();
  await c.mail(input({}, state));
  const plain = await c.data(input({ content }, state));
  assert.ok(!(plain.headers ?? []).some((h) => h.startsWith("ARC-")), "no seal without forwarding");
  state.forwarding = true;
  const out = await c.data(input({ content }, state));
  const arc = (out.headers ?? []).filter((h) => h.startsWith("ARC-"));
  assert.deepEqual(arc.map((h) => h.slice(0, h.indexOf(":"))).sort(), ["ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"]);
  assert.match(arc.find((h) => h.startsWith("ARC-Seal")) ?? "", /i=1;[\s\S]*cv=none/);
  // The next hop sees our headers on top of the message and validates the chain.
  const forwarded = Buffer.concat([Buffer.from((out.headers ?? []).map((h) => `${h}\r\n`).join("")), content]);
  const next = await both(check(), { clientIp: "198.51.100.9", mailFrom: "a@good.test", content: forwarded });
  assert.equal(next.data[1], "arc.pass");
});

test("a sender whose SPF DNS is slow costs only its own check: deadlines at MAIL do not end the verifier thread under another client's SPF", async () => {
  const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const slowResolver = async (name: string, type: string): Promise<unknown> => {
    if (name.includes("slow")) await wait(1500);
    if (name === "good.test") await wait(600);
    return resolver(name, type);
  };
  const c = new SenderAuthCheck({ resolver: slowResolver, authservId: AUTHSERV, checks: { trustedArcSealers: [], dmarcOverrides: {} } });
  try {
    assert.deepEqual((await c.mail(input({ mailFrom: "a@none.test", helo: "h.none.test" }))).verdicts, ["spf.fail"]); // thread started
    const honest = c.mail(input({}));
    const runner = new CheckRunner([c], VERDICT_DEFAULTS, 100);
    const slow = (n: number): Promise<number | undefined> => runner.run("mail", input({ mailFrom: `x@slow${n}.test`, helo: `h.slow${n}.test` }), log).then((d) => d.reply?.code);
    const s1 = slow(1);
    await wait(200);
    const s2 = slow(2);
    assert.deepEqual((await honest).verdicts, ["spf.pass"]);
    assert.deepEqual(await Promise.all([s1, s2]), [451, 451], "the slow senders' own checks fail closed at their deadline");
  } finally {
    c.close();
  }
});

test("the runner maps verdicts to actions, most severe first, and fails closed", async () => {
  const r = new CheckRunner([check()], VERDICT_DEFAULTS, 5000);
  assert.equal(r.decide(["spf.fail", "dmarc.reject"]).reply?.code, 550);
  assert.equal(r.decide(["dmarc.quarantine", "spf.fail"]).action, "quarantine");
  assert.deepEqual(r.decide(["dmarc.quarantine", "spf.fail"]).triggered, ["dmarc.quarantine"]);
  assert.equal(r.decide(["spf.pass", "dmarc.pass"]).action, "ignore");
  const strict = new CheckRunner([], { ...VERDICT_DEFAULTS, "spf.fail": "reject" }, 1000);
  assert.equal(strict.decide(["spf.fail"]).reply?.status, "5.7.23");
  const broken = new CheckRunner([{ name: "boom", mail: () => Promise.reject(new Error("no")) }], VERDICT_DEFAULTS, 1000);
  const d = await broken.run("mail", { clientIp: "192.0.2.1", helo: "h", mailFrom: "", recipients: [], state: new TransactionState() }, log);
  assert.equal(d.reply?.code, 451);
  assert.ok(d.failed);
  const slow = new CheckRunner([{ name: "slow", mail: (i) => new Promise((res) => i.signal.addEventListener("abort", () => setTimeout(() => res({ verdicts: ["x.pass"] }), 50))) }], VERDICT_DEFAULTS, 30);
  const t0 = Date.now();
  const s = await slow.run("mail", { clientIp: "192.0.2.1", helo: "h", mailFrom: "", recipients: [], state: new TransactionState() }, log);
  assert.equal(s.reply?.code, 451);
  assert.ok(Date.now() - t0 < 1000);
});

test("incoming Authentication-Results that claim our authserv-id are removed, others kept", () => {
  const msg = Buffer.from(
    "Authentication-Results: MX.Wardmail.test; dkim=pass header.d=good.test\r\n" +
      "Received: from x\r\n" +
      "Authentication-Results: other.example; spf=pass\r\n" +
      "Authentication-Results: (comment) \"mx.wardmail.test\" 1;\r\n\tdmarc=pass\r\n" +
      "Subject: s\r\n\r\nAuthentication-Results: mx.wardmail.test; body text stays\r\n",
  );
  const out = stripOwnHeaders(msg, AUTHSERV).toString();
  assert.equal(out, "Received: from x\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.wardmail.test; body text stays\r\n");
  // Every spelling of a header we write ourselves goes: folded before the colon, a trailing dot on the
  // id, a byte-order mark, and Received-SPF, X-Wardmail-Verdict and Return-Path whatever they say.
  const forged = Buffer.from(
    "Authentication-Results\r\n : mx.wardmail.test; dkim=pass\r\n" +
      "Authentication-Results: MX.wardmail.test.; dmarc=pass\r\n" +
      "\uFEFFAuthentication-Results: mx.wardmail.test; spf=pass\r\n" +
      "Received-SPF: pass (forged)\r\n" +
      "received-spf : pass\r\n" +
      "X-Wardmail-Verdict: none (ignore)\r\n" +
      "Return-Path: <ceo@bank.test>\r\n" +
      "Authentication-Results: mx.wardmail.test.other; dkim=pass\r\n" +
      "Subject: s\r\n\r\nReceived-SPF: in the body\r\n",
  );
  assert.equal(stripOwnHeaders(forged, AUTHSERV).toString(), "Authentication-Results: mx.wardmail.test.other; dkim=pass\r\nSubject: s\r\n\r\nReceived-SPF: in the body\r\n");
  assert.equal(stripOwnHeaders(Buffer.from("Subject: x\r\n\r\nb\r\n"), AUTHSERV).toString(), "Subject: x\r\n\r\nb\r\n");
  // An id that only looks like ours to a reader is ours too: zero-width characters, full-width dots, U-labels.
  const lookalike = Buffer.from(
    "Authentication-Results: mx.wardmail.test\u200B; dkim=pass\r\n" +
      "Authentication-Results: mx\uFF0Ewardmail\u3002test; dkim=pass\r\n" +
      "Authentication-Results: \uFEFFmx.wardmail.test; dkim=pass\r\n" +
      "Subject: s\r\n\r\nb\r\n",
  );
  assert.equal(stripOwnHeaders(lookalike, AUTHSERV).toString(), "Subject: s\r\n\r\nb\r\n");
  const idn = Buffer.from("Authentication-Results: xn--mx-wardml-22a.test; dkim=pass\r\nAuthentication-Results: mx-wardmäl.test; dkim=pass\r\nSubject: s\r\n\r\nb\r\n");
  assert.equal(stripOwnHeaders(idn, "MX-Wardmäl.test").toString(), "Subject: s\r\n\r\nb\r\n");
  assert.equal(authservIdOf(" example.org 1; none"), "example.org");
  assert.equal(authservIdOf(" (c (nested)) ex.org;"), "ex.org");
  assert.equal(authservIdOf(""), undefined);
});

test("a client's HELO name cannot add results to our Authentication-Results: it is quoted unless it is a token", async () => {
  for (const helo of ["x;dmarc=pass", "(c)dkim=pass;", 'a"b;spf=pass', "[192.0.2.1]"]) {
    const r = await both(check(), { clientIp: "198.51.100.7", helo, mailFrom: "bounce@elsewhere.test", content: message("ceo@none.test") });
    const ar = (r.headers.find((h) => h.startsWith("Authentication-Results:")) ?? "").replace(/\r\n\s*/g, " ");
    // Split into resinfos as an RFC 8601 reader does: at ";" outside quoted strings and comments.
    const resinfos: string[] = [];
    let cur = "";
    let quoted = false;
    let depth = 0;
    for (let i = 0; i < ar.length; i++) {
      const ch = ar[i] as string;
      if (quoted && ch === "\\") {
        cur += ch + (ar[++i] ?? "");
        continue;
      }
      if (ch === '"' && depth === 0) quoted = !quoted;
      else if (!quoted && ch === "(") depth++;
      else if (!quoted && ch === ")") depth--;
      if (ch === ";" && !quoted && depth === 0) {
        resinfos.push(cur.trim());
        cur = "";
      } else cur += ch;
    }
    resinfos.push(cur.trim());
    const methods = resinfos.slice(1).map((x) => /^([a-z-]+)=/.exec(x)?.[1]);
    // An address literal has no HELO identity to check (RFC 7208 §2.3).
    assert.deepEqual(methods, helo.startsWith("[") ? ["dkim", "spf", "arc", "dmarc"] : ["dkim", "spf", "spf", "arc", "dmarc"], `${helo}: ${ar}`);
    if (!helo.startsWith("[")) assert.match(resinfos.find((x) => x.includes("smtp.helo=")) ?? "", /^spf=\w+ smtp\.helo="(?:[^"\\]|\\.)*"$/, helo);
  }
  const plain = await both(check(), { clientIp: "198.51.100.7", helo: "mx.good.test", mailFrom: "bounce@elsewhere.test", content: message("ceo@none.test") });
  assert.match(plain.headers.find((h) => h.startsWith("Authentication-Results:")) ?? "", /smtp\.helo=mx\.good\.test;/);
});
