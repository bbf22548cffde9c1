/**
 * DKIM keys on disk and the zone-file helpers: name checks, key generation
 * (file and directory modes, PKCS#8, the record formats of RFC 6376 §3.6.1
 * and RFC 8463 §4.2), no overwrite without force, loading (newest set first,
 * broken sets reported and left out), and TXT splitting at 255 bytes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DkimKeyError,
  defaultSelector,
  dkimRecords,
  generateDomainKeys,
  inspectKeys,
  keyFile,
  loadSigningKeys,
  normalizeDomain,
  normalizeSelector,
  quoteTxtString,
  splitTxt,
  txtLine,
  txtRdata,
} from "./index.ts";
import { txtStrings } from "../../test/helpers/dkim.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-dkim-keys-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("names", () => {
  test("domains: lowercase A-labels with at least two labels", () => {
    assert.equal(normalizeDomain("Example.COM."), "example.com");
    assert.equal(normalizeDomain("mail-1.example.co.uk"), "mail-1.example.co.uk");
    assert.equal(normalizeDomain("bücher.example"), "xn--bcher-kva.example");
    for (const bad of ["", "localhost", "-a.example", "a-.example", "a..example", "a_b.example", "192.0.2.1", "x@example.com", "a b.example", "../etc", `${"a".repeat(64)}.example`]) {
      assert.equal(normalizeDomain(bad), undefined, bad);
    }
  });

  test("selectors: one label that leaves room for -ed25519; the default is wm + YYYYMM (UTC)", () => {
    assert.equal(normalizeSelector("Mail2026"), "mail2026");
    assert.equal(normalizeSelector("a".repeat(55)), "a".repeat(55));
    for (const bad of ["", "a".repeat(56), "a.b", "-a", "a-", "a_b", "a/b"]) assert.equal(normalizeSelector(bad), undefined, bad);
    assert.equal(defaultSelector(new Date("2026-01-31T23:59:59Z")), "wm202601");
    assert.equal(defaultSelector(new Date("2026-12-01T00:00:00Z")), "wm202612");
  });
});

describe("generateDomainKeys", () => {
  test("writes RSA-2048 and Ed25519 PKCS#8 keys 0600 in 0700 directories and returns their records", async () => {
    const data = join(dir, "gen");
    const g = await generateDomainKeys(data, "Example.com", { now: new Date("2026-11-27T12:00:00Z") });
    assert.equal(g.domain, "example.com");
    assert.equal(g.selector, "wm202611");
    assert.deepEqual(g.files, { rsa: join(data, "dkim", "example.com", "wm202611.rsa.pem"), ed25519: join(data, "dkim", "example.com", "wm202611.ed25519.pem") });
    assert.deepEqual(g.createdDirs, [data, join(data, "dkim"), join(data, "dkim", "example.com")]);
    for (const d of g.createdDirs) assert.equal((await stat(d)).mode & 0o777, 0o700, d);
    for (const f of [g.files.rsa, g.files.ed25519]) {
      assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      assert.match(await readFile(f, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
    }

    const [rsa, ed] = g.records;
    assert.equal(rsa?.name, "wm202611-rsa._domainkey.example.com");
    assert.equal(rsa?.selector, "wm202611-rsa");
    const p = /^v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)$/.exec(rsa?.value ?? "")?.[1];
    assert.ok(p, rsa?.value);
    const pub = createPublicKey({ key: Buffer.from(p, "base64"), format: "der", type: "spki" });
    assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);

    assert.equal(ed?.name, "wm202611-ed25519._domainkey.example.com");
    const e = /^v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)$/.exec(ed?.value ?? "")?.[1];
    assert.ok(e, ed?.value);
    assert.equal(Buffer.from(e, "base64").length, 32, "RFC 8463 §4.2: the bare 32-byte public key, not SPKI");

    // The records derived from the stored private keys are the same.
    const keys = await loadSigningKeys(data);
    const set = keys.get("example.com")?.[0];
    assert.ok(set);
    assert.deepEqual(dkimRecords(set), g.records);
    assert.equal(set.rsaBits, 2048);
  });

  test("refuses to overwrite without force; force replaces; refuses bad names", async () => {
    const data = join(dir, "overwrite");
    const first = await generateDomainKeys(data, "example.org", { selector: "s1" });
    const before = await readFile(first.files.rsa, "utf8");
    await assert.rejects(generateDomainKeys(data, "example.org", { selector: "S1" }), (err: unknown) => err instanceof DkimKeyError && err.code === "EXISTS");
    assert.equal(await readFile(first.files.rsa, "utf8"), before, "left alone");
    // One file of the pair is enough to refuse.
    await rm(first.files.rsa);
    await assert.rejects(generateDomainKeys(data, "example.org", { selector: "s1" }), /exist already/);
    const forced = await generateDomainKeys(data, "example.org", { selector: "s1", force: true });
    assert.notEqual(await readFile(forced.files.rsa, "utf8"), before);
    assert.notDeepEqual(forced.records, first.records);
    assert.deepEqual(forced.createdDirs, []);
    await assert.rejects(generateDomainKeys(data, "localhost"), (err: unknown) => err instanceof DkimKeyError && err.code === "INVALID");
    await assert.rejects(generateDomainKeys(data, "example.org", { selector: "a.b" }), /not a selector/);
  });
});

describe("loadSigningKeys / inspectKeys", () => {
  test("no directory: nothing, no problems", async () => {
    assert.deepEqual(await inspectKeys(join(dir, "none")), { sets: [], problems: [] });
    assert.equal((await loadSigningKeys(join(dir, "none"))).size, 0);
  });

  test("every complete set, newest first; broken sets reported and left out", async () => {
    const data = join(dir, "load");
    await generateDomainKeys(data, "a.example", { selector: "old" });
    await generateDomainKeys(data, "a.example", { selector: "new" });
    await generateDomainKeys(data, "b.example", { selector: "x" });
    // "old" is a month older.
    const past = new Date(Date.now() - 30 * 86400_000);
    for (const t of ["rsa", "ed25519"] as const) await utimes(keyFile(data, "a.example", "old", t), past, past);
    // Broken: a lone RSA file, a set whose files hold the other key type, a garbage file, a stray name, a non-domain directory.
    await generateDomainKeys(data, "c.example", { selector: "lone" });
    await rm(keyFile(data, "c.example", "lone", "ed25519"));
    const sw = await generateDomainKeys(data, "c.example", { selector: "swapped" });
    await rename(sw.files.rsa, `${sw.files.rsa}.tmp`);
    await rename(sw.files.ed25519, sw.files.rsa);
    await rename(`${sw.files.rsa}.tmp`, sw.files.ed25519);
    await generateDomainKeys(data, "c.example", { selector: "garbage" });
    await writeFile(keyFile(data, "c.example", "garbage", "rsa"), "not a key\n");
    await writeFile(join(data, "dkim", "c.example", "Bad_Name.rsa.pem"), "x");
    await writeFile(join(data, "dkim", "c.example", "README"), "ignored: not a .pem");
    await generateDomainKeys(data, "c.example", { selector: "good" });
    await writeFile(join(data, "dkim", "NOT A DOMAIN"), "");

    const problems: string[] = [];
    const keys = await loadSigningKeys(data, (p) => problems.push(p));
    assert.deepEqual([...keys.keys()], ["a.example", "b.example", "c.example"]);
    assert.deepEqual(keys.get("a.example")?.map((s) => s.selector), ["new", "old"]);
    assert.deepEqual(keys.get("c.example")?.map((s) => s.selector), ["good"]);
    const set = keys.get("a.example")?.[0];
    assert.equal(set?.selectorRsa, "new-rsa");
    assert.equal(set?.selectorEd, "new-ed25519");
    assert.equal(set?.rsaKey.asymmetricKeyType, "rsa");
    assert.equal(set?.edKey.asymmetricKeyType, "ed25519");

    assert.equal(problems.length, 5, problems.join("\n"));
    const has = (re: RegExp): void => assert.ok(problems.some((p) => re.test(p)), `${String(re)} in\n${problems.join("\n")}`);
    has(/NOT A DOMAIN: not a directory/);
    has(/lone\.ed25519\.pem is missing: selector lone of c\.example does not sign/);
    has(/swapped\.rsa\.pem: not an RSA key of at least 1024 bits \(found ed25519\)/);
    has(/garbage\.rsa\.pem: cannot read the key/);
    has(/Bad_Name\.rsa\.pem: not named/);
  });
});

describe("zone-file TXT", () => {
  test("splitTxt: at most 255 bytes each, joins back, never inside a UTF-8 character", () => {
    const rsa = `v=DKIM1; k=rsa; p=${"A".repeat(392)}`;
    const parts = splitTxt(rsa);
    assert.deepEqual(parts.map((p) => Buffer.byteLength(p)), [255, rsa.length - 255]);
    assert.equal(parts.join(""), rsa);
    assert.deepEqual(splitTxt("short"), ["short"]);
    assert.deepEqual(splitTxt(""), [""]);
    assert.deepEqual(splitTxt("x".repeat(510)), ["x".repeat(255), "x".repeat(255)]);
    const utf = "é".repeat(200); // 400 bytes
    const u = splitTxt(utf);
    assert.ok(u.every((p) => Buffer.byteLength(p) <= 255));
    assert.equal(u.join(""), utf);
    assert.equal(Buffer.byteLength(u[0] ?? ""), 254);
  });

  test("quoting, rdata and a zone line; the strings read back", () => {
    assert.equal(quoteTxtString('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoteTxtString("tab\there"), '"tab\\009here"');
    assert.equal(txtRdata("v=spf1 mx -all"), '"v=spf1 mx -all"');
    const value = `v=DKIM1; k=rsa; p=${"B".repeat(300)}`;
    const line = txtLine("s-rsa._domainkey.Example.com", value);
    assert.match(line, /^s-rsa\._domainkey\.example\.com\.\tIN\tTXT\t"v=DKIM1; k=rsa; p=B+" "B+"$/);
    assert.equal(txtStrings(line).join(""), value);
  });
});
