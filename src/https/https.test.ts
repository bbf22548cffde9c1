import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStsPolicy } from "../outbound/index.ts";
import { autoconfigXml, autodiscoverAddress, autodiscoverXml, plainAddress, requestHost, stsPolicyText, xmlEscape, type MailSettings } from "./index.ts";

const MAIL: MailSettings = {
  imap: { host: "imap.example.com", port: 993, socketType: "SSL" },
  smtp: [
    { host: "mail.example.com", port: 465, socketType: "SSL" },
    { host: "mail.example.com", port: 587, socketType: "STARTTLS" },
  ],
};

void test("the policy text parses back (our own MTA-STS parser) with every field", () => {
  const text = stsPolicyText({ mode: "enforce", mx: ["mail.example.com", "*.mx.example.com"], maxAge: 604800 });
  assert.equal(text, "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.mx.example.com\r\nmax_age: 604800\r\n");
  const p = parseStsPolicy(text);
  assert.ok(p.ok);
  assert.deepEqual(p.policy.mx, ["mail.example.com", "*.mx.example.com"]);
  assert.equal(p.policy.maxAge, 604800);
});

void test("Host header: lower case, port and final dot removed, anything else refused", () => {
  assert.equal(requestHost("MTA-STS.Example.com:443"), "mta-sts.example.com");
  assert.equal(requestHost("example.com."), "example.com");
  for (const bad of [undefined, "", "a b", "example.com:x", "[::1]:443", "a".repeat(300), "ex/ample"]) assert.equal(requestHost(bad), undefined, String(bad));
});

void test("XML documents escape what they carry; addresses parsed strictly", () => {
  assert.equal(xmlEscape(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
  const xml = autoconfigXml("example.com", MAIL);
  assert.match(xml, /<outgoingServer type="smtp">\n {6}<hostname>mail\.example\.com<\/hostname>\n {6}<port>465<\/port>\n {6}<socketType>SSL<\/socketType>/);
  assert.match(xml, /<port>587<\/port>\n {6}<socketType>STARTTLS<\/socketType>/);
  assert.equal((xml.match(/<incomingServer /g) ?? []).length, 1);
  const ad = autodiscoverXml("o'neil@example.com", MAIL);
  assert.match(ad, /<LoginName>o&apos;neil@example\.com<\/LoginName>/);
  assert.equal(autodiscoverAddress("<x><EMailAddress> a@b.example </EMailAddress></x>"), "a@b.example");
  assert.equal(autodiscoverAddress("<EMailAddress></EMailAddress>"), undefined);
  assert.deepEqual(plainAddress("User@Example.COM"), { local: "User", domain: "example.com" });
  for (const bad of ["a", "a@", "@b", "a b@c", "a@b@c", "<a@b>", `${"x".repeat(65)}@b`]) assert.equal(plainAddress(bad), undefined, bad);
});

void test("a hostile Autodiscover body is scanned in linear time", () => {
  const body = "<EMailAddress>".repeat(500) + "x".repeat(1000);
  const t0 = performance.now();
  assert.equal(autodiscoverAddress(body), undefined);
  assert.ok(performance.now() - t0 < 200);
});
