/**
 * `wardmail domain dns D` run in-process through main(): help and usage
 * errors, exit codes, every record (MX, SPF with and without --ip, DKIM
 * from the stored keys or the hint to create them, DMARC, MTA-STS with its
 * policy file, TLS-RPT), TXT strings within 255 bytes, and the output
 * loaded as a zone by dnspython (an independent zone-file parser) with
 * every TXT value as intended.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pythonMissing, runPython, txtStrings } from "../../test/helpers/dkim.ts";
import { peerSkip } from "../../test/helpers/peers.ts";
import { main } from "./main.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let configFile: string;
let defaultsConfig: string;

async function run(args: string[], config: string | undefined = configFile): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main([...args, ...(config === undefined ? [] : ["--config", config])], { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

/** [name, type, rdata] of every record line (comments and empty lines left out); each must be well-formed. */
function recordLines(out: string): [string, string, string][] {
  return out
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith(";"))
    .map((l) => {
      const m = /^(\S+\.)\tIN\t(MX|TXT|A|AAAA|CNAME|SRV)\t(.+)$/.exec(l);
      assert.ok(m, `not a record line: ${l}`);
      return [m[1] as string, m[2] as string, m[3] as string];
    });
}

function txt(out: string, name: string): string | undefined {
  const line = out.split("\n").find((l) => l.startsWith(`${name}\tIN\tTXT\t`));
  return line === undefined ? undefined : txtStrings(line).join("");
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "wardmail-domain-cli-"));
  configFile = join(dir, "wardmail.toml");
  await writeFile(configFile, `[server]\ndata_dir = ${JSON.stringify(join(dir, "data"))}\nhostname = "mail.example.com"\n`);
  defaultsConfig = join(dir, "defaults.toml");
  await writeFile(defaultsConfig, `[server]\ndata_dir = ${JSON.stringify(join(dir, "data"))}\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("wardmail domain dns", () => {
  test("help and usage errors", async () => {
    for (const args of [["domain", "--help"], ["domain", "dns", "--help"], ["domain", "dns", "example.com", "-h"]]) {
      const r = await run(args, undefined);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^Usage: wardmail domain dns D \[--mx HOST\] \[--ip ADDR\]\.\.\./);
    }
    assert.match((await run(["--help"], undefined)).stdout, /domain dns D \[--mx HOST\]/);
    const cases: [string[], RegExp][] = [
      [["domain"], /missing action/],
      [["domain", "mx", "example.com"], /unknown action 'mx'/],
      [["domain", "dns"], /expected exactly one domain/],
      [["domain", "dns", "a.example", "b.example"], /expected exactly one domain/],
      [["domain", "dns", "example.com", "--mx"], /Option .--mx. argument/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, re);
    }
  });

  test("answers no to a bad domain, host or address, and to a server.hostname nobody can reach", async () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [["domain", "dns", "localhost"], configFile, /not a domain name: "localhost"/],
      [["domain", "dns", "example.com", "--ip", "300.1.2.3"], configFile, /not an IP address: "300\.1\.2\.3"/],
      [["domain", "dns", "example.com", "--mx", "mx_1.example.com"], configFile, /not a host name/],
      [["domain", "dns", "example.com"], defaultsConfig, /server\.hostname is "localhost", not a name other servers can reach: set server\.hostname in the config or give --mx HOST/],
    ];
    for (const [args, cfg, re] of cases) {
      const r = await run(args, cfg);
      assert.equal(r.code, 1, args.join(" "));
      assert.equal(r.stdout, "");
      assert.match(r.stderr, re);
    }
    assert.equal((await run(["domain", "dns", "example.com"], join(dir, "missing.toml"))).code, 3);
    assert.equal((await run(["domain", "dns", "example.com", "--mx", "mx.example.net"], defaultsConfig)).code, 0, "--mx instead of the hostname");
  });

  test("without DKIM keys: every other record, and how to make the keys", async () => {
    const r = await run(["domain", "dns", "Example.com"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no DKIM keys for example\.com yet: run wardmail dkim keygen --domain example\.com/);
    assert.deepEqual(recordLines(r.stdout), [
      ["example.com.", "MX", "10 mail.example.com."],
      ["example.com.", "TXT", '"v=spf1 mx -all"'],
      ["_dmarc.example.com.", "TXT", '"v=DMARC1; p=reject; rua=mailto:postmaster@example.com"'],
      ["_mta-sts.example.com.", "TXT", recordLines(r.stdout)[3]?.[2] ?? ""],
      ["mta-sts.example.com.", "CNAME", "mail.example.com."],
      ["autoconfig.example.com.", "CNAME", "mail.example.com."],
      ["autodiscover.example.com.", "CNAME", "mail.example.com."],
      ["_submissions._tcp.example.com.", "SRV", "0 1 2465 mail.example.com."],
      ["_submission._tcp.example.com.", "SRV", "0 1 2587 mail.example.com."],
      ["_imaps._tcp.example.com.", "SRV", "0 1 993 mail.example.com."],
      ["_smtp._tls.example.com.", "TXT", '"v=TLSRPTv1; rua=mailto:tlsrpt@example.com"'],
    ]);
    assert.match(txt(r.stdout, "_mta-sts.example.com.") ?? "", /^v=STSv1; id=\d{14}$/);
    const prose = r.stdout.replace(/\n; (?! )/g, " "); // comment paragraphs unwrapped
    assert.match(prose, /DKIM: no keys for example\.com yet\. Run `wardmail dkim keygen --domain example\.com`/);
    assert.match(prose, /publish p=none first/);
    assert.match(prose, /at https:\/\/mta-sts\.example\.com\/\.well-known\/mta-sts\.txt /);
    assert.ok(r.stdout.split("\n").every((l) => l.startsWith(";") ? l.length <= 78 : true), "comments within 78 columns");
    assert.match(r.stdout, /; {3}version: STSv1\n; {3}mode: enforce\n; {3}mx: mail\.example\.com\n; {3}max_age: 604800\n/);
  });

  test("with keys: every key set's two records; --ip replaces mx in SPF and gives the MX host its addresses", async () => {
    const k1 = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "k1"]);
    const k2 = await run(["dkim", "keygen", "--domain", "example.com", "--selector", "k2"]);
    await run(["dkim", "keygen", "--domain", "other.example", "--selector", "k1"]);
    const r = await run(["domain", "dns", "example.com", "--ip", "192.0.2.25", "--ip", "2001:db8::25"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = recordLines(r.stdout);
    assert.deepEqual(lines.slice(0, 3), [
      ["example.com.", "MX", "10 mail.example.com."],
      ["mail.example.com.", "A", "192.0.2.25"],
      ["mail.example.com.", "AAAA", "2001:db8::25"],
    ]);
    assert.equal(txt(r.stdout, "example.com."), "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all");
    for (const out of [k1.stdout, k2.stdout]) {
      for (const line of out.split("\n").filter((l) => l.includes("\tTXT\t"))) assert.ok(r.stdout.includes(`${line}\n`), line);
    }
    assert.ok(!r.stdout.includes("other.example"), "only this domain's keys");
    assert.equal(lines.filter(([n]) => n.includes("._domainkey.")).length, 4);
    for (const [, type, rdata] of lines) {
      if (type === "TXT") for (const s of txtStrings(rdata)) assert.ok(Buffer.byteLength(s) <= 255);
    }

    const elsewhere = await run(["domain", "dns", "example.com", "--mx", "mx.provider.example", "--ip", "192.0.2.25"]);
    assert.deepEqual(recordLines(elsewhere.stdout)[0], ["example.com.", "MX", "10 mx.provider.example."]);
    assert.ok(!elsewhere.stdout.includes("\tA\t"), "no address records for a host outside the domain");
  });

  test("dnspython loads the output as a zone with every TXT value as intended", { skip: peerSkip(pythonMissing("dns.zone", "python3-dnspython")) }, async () => {
    const r = await run(["domain", "dns", "example.com", "--ip", "192.0.2.25"]);
    const code = `
import sys, json, dns.zone, dns.rdatatype
z = dns.zone.from_text(sys.stdin.read(), origin="example.com.", check_origin=False, relativize=False)
out = {}
for name, ttl, rd in z.iterate_rdatas():
    key = name.to_text() + " " + dns.rdatatype.to_text(rd.rdtype)
    val = b"".join(rd.strings).decode() if rd.rdtype == dns.rdatatype.TXT else rd.to_text()
    out.setdefault(key, []).append(val)
print(json.dumps(out))
`;
    const zone = JSON.parse(await runPython(code, [], `$TTL 3600\n${r.stdout}`)) as Record<string, string[]>;
    assert.deepEqual(zone["example.com. MX"], ["10 mail.example.com."]);
    assert.deepEqual(zone["mail.example.com. A"], ["192.0.2.25"]);
    assert.deepEqual(zone["example.com. TXT"], ["v=spf1 ip4:192.0.2.25 -all"]);
    assert.deepEqual(zone["_dmarc.example.com. TXT"], ["v=DMARC1; p=reject; rua=mailto:postmaster@example.com"]);
    assert.deepEqual(zone["_smtp._tls.example.com. TXT"], ["v=TLSRPTv1; rua=mailto:tlsrpt@example.com"]);
    assert.match(zone["_mta-sts.example.com. TXT"]?.[0] ?? "", /^v=STSv1; id=\d{14}$/);
    const dkim = Object.entries(zone).filter(([k]) => k.includes("._domainkey."));
    assert.ok(dkim.length >= 2);
    for (const [k, [v]] of dkim) {
      assert.equal(v, txt(r.stdout, k.replace(/ TXT$/, "")), k);
      assert.match(v ?? "", /^v=DKIM1; k=(rsa|ed25519); p=/);
    }
  });
});
