// In-process CPU cost of the sender-authentication check, without sockets:
// the server's SenderAuthCheck (src/mailauth) on one message like
// bench/checks.ts's (about 11 KB, RSA-2048 rsa-sha256 relaxed/simple
// signature of sender.test), with an in-memory resolver, 50 messages in
// flight. Prints the thread CPU per message of MAIL (SPF for MAIL FROM and
// HELO), DATA (DKIM, ARC, DMARC, headers) and both: the best and the median
// of 10 batches of 1,000 after 500 warm-up messages.
//
//   node bench/checks-cpu.ts
//
// The SPF results of MAIL are not kept between messages here (no
// connection state), as at 1 message per connection.
import { generateKeyPairSync } from "node:crypto";
import { dkimSign } from "mailauth";
import { SenderAuthCheck } from "../src/mailauth/index.ts";
import { TransactionState } from "../src/policy/index.ts";
import { DkimKeyCache } from "../src/mailauth/verify.ts";
import { verifyContent } from "../src/mailauth/content.ts";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod.\r\n".repeat(140);
const unsigned =
  "From: Bench Sender <sender@sender.test>\r\nTo: <sink@bench.test>\r\nSubject: sender authentication benchmark\r\n" +
  "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench-checks@sender.test>\r\nMIME-Version: 1.0\r\n" +
  `Content-Type: text/plain; charset=us-ascii\r\n\r\n${body}`;
const signed = await dkimSign(unsigned, {
  signatureData: [{ signingDomain: "sender.test", selector: "sel", privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), algorithm: "rsa-sha256", canonicalization: "relaxed/simple" }],
} as never);
const content = Buffer.from(signed.signatures + unsigned);

const records: Record<string, string> = {
  "sel._domainkey.sender.test": `v=DKIM1; k=rsa; p=${publicKey.export({ type: "spki", format: "der" }).toString("base64")}`,
  "_dmarc.sender.test": "v=DMARC1; p=reject",
  "sender.test": "v=spf1 ip4:127.0.0.1 -all",
  "mta.sender.test": "v=spf1 ip4:127.0.0.1 -all",
};
const resolver = (name: string, type: string): Promise<unknown> => {
  const txt = type === "TXT" ? records[name] : undefined;
  return txt === undefined ? Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: "ENOTFOUND" })) : Promise.resolve([[txt]]);
};
const check = new SenderAuthCheck({ resolver, authservId: "mx.bench.test", checks: { trustedArcSealers: [], dmarcOverrides: {} } });

type Phase = "mail" | "data" | "both" | "thread";
const keys = new DkimKeyCache();
async function one(phase: Phase): Promise<void> {
  if (phase === "thread") {
    // What the verifier thread does for DATA (DKIM, ARC, DMARC's inputs), here in this thread.
    const v = await verifyContent(content, { mailFrom: "sender@sender.test", clientIp: "127.0.0.1", helo: "mta.sender.test", authservId: "mx.bench.test" }, resolver, keys);
    if (v.dkim.results?.[0]?.status.result !== "pass") throw new Error("unexpected DKIM result");
    return;
  }
  const base = { clientIp: "127.0.0.1", helo: "mta.sender.test", mailFrom: "sender@sender.test", recipients: ["sink@bench.test"], state: new TransactionState(), signal: new AbortController().signal };
  if (phase !== "data") {
    const m = await check.mail(base);
    if (m.verdicts[0] !== "spf.pass") throw new Error(`unexpected MAIL verdicts ${m.verdicts.join(" ")}`);
  }
  if (phase === "mail") return;
  const d = await check.data({ ...base, content });
  if (d.verdicts[0] !== "dkim.pass" || d.verdicts[2] !== "dmarc.pass") throw new Error(`unexpected DATA verdicts ${d.verdicts.join(" ")}`);
}

async function batch(phase: Phase, n: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next++ < n) await one(phase);
  }));
}

for (const phase of ["mail", "data", "both", "thread"] as const) {
  await batch(phase, 500);
  const perMessage: number[] = [];
  for (let r = 0; r < 10; r++) {
    const t = process.threadCpuUsage();
    await batch(phase, 1000);
    const d = process.threadCpuUsage(t);
    perMessage.push((d.user + d.system) / 1000 / 1000);
  }
  perMessage.sort((a, b) => a - b);
  const median = ((perMessage[4] ?? 0) + (perMessage[5] ?? 0)) / 2;
  console.log(`${phase.padEnd(4)}  thread CPU per message: best ${(perMessage[0] ?? 0).toFixed(3)} ms, median ${median.toFixed(3)} ms (10 batches of 1,000)`);
}
