/**
 * isEncrypted on every encrypted form it must recognise (and signed-only or
 * plain mail it must not), and the outer header of an encrypted copy: kept
 * fields byte for byte, Subject "[...]", everything else only inside.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isEncrypted, outerHeader, parseContentType } from "./index.ts";

const m = (s: string): Buffer => Buffer.from(s, "latin1");

/** The start of a CMS ContentInfo of type envelopedData / authEnvelopedData, in base64. */
const ENVELOPED = Buffer.from("308006092a864886f70d010703a0803080020100", "hex").toString("base64");
const AUTH_ENVELOPED = Buffer.from("3082010a060b2a864886f70d0109100117a082", "hex").toString("base64");
const ARMOR = "-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n";

test("isEncrypted: PGP/MIME, S/MIME enveloped and authEnveloped, legacy x-pkcs7-mime, inline PGP", () => {
  const yes = [
    `From: a@b.test\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\nContent-Type: application/octet-stream\r\n\r\n${ARMOR}--x--\r\n`,
    `From: a@b.test\r\nContent-Type: Multipart/Encrypted;\r\n\tprotocol="application/pgp-encrypted";\r\n boundary="x"\r\n\r\n--x\r\n\r\n${ARMOR}`,
    `From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n${ENVELOPED}\r\n`,
    `From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type="authEnveloped-data"\r\nContent-Transfer-Encoding: BASE64\r\n\r\n${AUTH_ENVELOPED}\r\n`,
    `From: a@b.test\r\nContent-Type: application/x-pkcs7-mime; name="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n\r\n${ENVELOPED.slice(0, 8)}\r\n${ENVELOPED.slice(8)}\r\n`,
    "From: a@b.test\r\nSubject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n",
    "From: a@b.test\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n  -----BEGIN PGP MESSAGE-----\r\nVersion: x\r\n",
  ];
  for (const s of yes) assert.equal(isEncrypted(m(s)), true, s);
});

test("isEncrypted: plain, signed-only, compressed, labelled encrypted without ciphertext, multipart with a PGP block inside, a PGP block late in the body", () => {
  const no = [
    'From: a@b.test\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\n\r\nplain text, not encrypted\r\n--x--\r\n',
    "From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8sIHRoaXMgaXMgcGxhaW4gdGV4dA==\r\n",
    `From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n${ENVELOPED}\r\n`,
    "From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n",
    "From: a@b.test\r\n\r\n",
    "From: a@b.test",
    'From: a@b.test\r\nContent-Type: multipart/signed; protocol="application/pgp-signature"; boundary=x\r\n\r\n--x\r\n',
    "From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\r\nMIAG\r\n",
    "From: a@b.test\r\nContent-Type: application/pkcs7-mime; smime-type=compressed-data\r\n\r\nMIAG\r\n",
    "From: a@b.test\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n",
    "From: a@b.test\r\n\r\nSee below.\r\n-----BEGIN PGP MESSAGE-----\r\n",
    "From: a@b.test\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\n",
    `From: a@b.test\r\n\r\n${" ".repeat(5000)}\r\n-----BEGIN PGP MESSAGE-----\r\n`,
  ];
  for (const s of no) assert.equal(isEncrypted(m(s)), false, s);
});

test("parseContentType: defaults, quoted values, case, junk", () => {
  assert.equal(parseContentType(undefined).type, "text/plain");
  const ct = parseContentType(' Multipart/Encrypted; PROTOCOL="application/pgp-encrypted"; boundary="a\\"b"');
  assert.equal(ct.type, "multipart/encrypted");
  assert.equal(ct.params.get("protocol"), "application/pgp-encrypted");
  assert.equal(ct.params.get("boundary"), 'a"b');
  assert.equal(parseContentType("garbage").type, "text/plain");
  // Long hostile values are cut, in linear time.
  const t0 = performance.now();
  parseContentType("a/b" + '; x="'.repeat(50_000));
  assert.ok(performance.now() - t0 < 200);
});

test("outerHeader keeps the delivery and threading fields byte for byte, obscures Subject, drops the rest", () => {
  const raw = m(
    "Received: from client.test (127.0.0.1)\r\n\tby mx.example.test; Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "Authentication-Results: mx.example.test; spf=pass\r\n" +
      "From: Alice <alice@b.test>\r\n" +
      "To: user@example.test\r\n" +
      "Cc: other@example.test\r\n" +
      "Bcc: hidden@example.test\r\n" +
      "Subject: the secret plans\r\n" +
      "Date: Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "Message-ID: <1@b.test>\r\n" +
      "In-Reply-To: <0@b.test>\r\n" +
      "References: <0@b.test>\r\n" +
      "Keywords: plans\r\n" +
      "X-Mailer: Secret 1.0\r\n" +
      "X-Wardmail-Verdict: spam.tag\r\n" +
      "MIME-Version: 1.0\r\n" +
      "Content-Type: text/plain\r\n" +
      "\r\nbody with Subject: in it\r\n",
  );
  const out = outerHeader(raw).toString("latin1");
  assert.equal(
    out,
    "Received: from client.test (127.0.0.1)\r\n\tby mx.example.test; Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "Authentication-Results: mx.example.test; spf=pass\r\n" +
      "From: Alice <alice@b.test>\r\n" +
      "To: user@example.test\r\n" +
      "Cc: other@example.test\r\n" +
      "Subject: [...]\r\n" +
      "Date: Mon, 7 Dec 2026 08:00:00 +0000\r\n" +
      "Message-ID: <1@b.test>\r\n" +
      "In-Reply-To: <0@b.test>\r\n" +
      "References: <0@b.test>\r\n" +
      "X-Wardmail-Verdict: spam.tag\r\n",
  );
  // A header without a body, its last field without CRLF: still whole lines.
  assert.equal(outerHeader(m("From: a@b.test\r\nTo: c@d.test")).toString("latin1"), "From: a@b.test\r\nTo: c@d.test\r\n");
});
