// The sender domain and the DKIM-signed message of the benches with sender
// authentication (bench/checks.ts, bench/stack.ts): the zone sender.test
// (SPF "ip4:127.0.0.1 -all" for the domain and for the HELO name
// mta.sender.test, an RSA-2048 DKIM key at sel._domainkey, DMARC p=reject)
// and the empty zone "test" above it, served by Knot; one message of about
// `size` body bytes from sender@sender.test, signed once by dkimpy's
// dkimsign (an independent signer; relaxed/simple, rsa-sha256).
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { exec } from "./exec.ts";
import { dkimTxt, txtRdata, zoneText } from "./knot.ts";

export const DKIMSIGN = "/usr/bin/dkimsign";
export const SENDER_DOMAIN = "sender.test";
export const SENDER_FROM = `sender@${SENDER_DOMAIN}`;
export const SENDER_HELO = `mta.${SENDER_DOMAIN}`;

/** About `size` bytes of body text in 76-character lines, CRLF. */
export function bodyText(size: number): string {
  const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua".split(" ");
  const lines: string[] = [];
  let total = 0;
  let line = "";
  for (let i = 0; total < size; i++) {
    const w = words[i % words.length] ?? "x";
    if (line.length + 1 + w.length > 76) {
      lines.push(line);
      total += line.length + 2;
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  return lines.join("\r\n") + "\r\n";
}

export interface SignedMessage {
  /** The sender domain, envelope sender and HELO name that the zones authorise. */
  domain: string;
  from: string;
  helo: string;
  /** Knot zones by origin (for startKnot). */
  zones: Record<string, string>;
  /** The signed message with LF line ends, as smtp-source -F wants it. */
  file: string;
  /** Its size in bytes (CRLF). */
  bytes: number;
}

/**
 * Makes a fresh RSA-2048 key, the zones publishing it, and the message signed
 * by dkimsign, in `dir`. `opts.domain` (default sender.test) must have one
 * label under its parent zone (sender.test under test).
 */
export async function makeSignedMessage(dir: string, opts: { size: number; to: string; subject: string; messageId: string; domain?: string }): Promise<SignedMessage> {
  const domain = opts.domain ?? SENDER_DOMAIN;
  const parent = domain.slice(domain.indexOf(".") + 1);
  const from = `sender@${domain}`;
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyPath = path.join(dir, "sel.pem");
  await writeFile(keyPath, privateKey.export({ type: "pkcs1", format: "pem" }));
  const zones = {
    [domain]: zoneText(domain, [
      '@ TXT "v=spf1 ip4:127.0.0.1 -all"',
      'mta TXT "v=spf1 ip4:127.0.0.1 -all"',
      "mta A 127.0.0.1",
      `sel._domainkey TXT ${txtRdata(dkimTxt(publicKey.export({ type: "spki", format: "der" })))}`,
      '_dmarc TXT "v=DMARC1; p=reject"',
    ]),
    [parent]: zoneText(parent),
  };
  const unsigned =
    [
      `From: Bench Sender <${from}>`,
      `To: <${opts.to}>`,
      `Subject: ${opts.subject}`,
      "Date: Fri, 27 Nov 2026 10:00:00 +0000",
      `Message-ID: <${opts.messageId}@${domain}>`,
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=us-ascii",
      "",
    ].join("\r\n") +
    "\r\n" +
    bodyText(opts.size);
  const run = await exec(DKIMSIGN, ["sel", domain, keyPath], { input: Buffer.from(unsigned, "latin1"), timeoutMs: 30_000 });
  const signed = run.stdout.toString("latin1");
  if (run.code !== 0 || !signed.startsWith("DKIM-Signature:")) throw new Error(`dkimsign failed (${run.code}): ${run.stderr.toString("latin1")}`);
  const file = path.join(dir, "signed.eml");
  await writeFile(file, signed.replace(/\r\n/g, "\n"), "latin1");
  return { domain, from, helo: `mta.${domain}`, zones, file, bytes: signed.length };
}
