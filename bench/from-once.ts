// CPU of the end-of-DATA checks that read the From: field, per message, with
// the header section and author read once (src/message MessageHead, handed
// through CheckInput.head) or, in a tree from before that, each check
// parsing its own. Runs the DATA hooks of the server's SenderAuthCheck
// (DKIM, ARC, DMARC, the From: rules; src/mailauth) and ImpersonationCheck
// (src/impersonation) through a CheckRunner, on a 10 KB message signed with
// RSA-2048 (as bench/checks-cpu.ts), in-memory DNS, 50 in flight, after the
// receiver's own header read (headerFields, or MessageHead when the tree has
// it). process.cpuUsage (user + system, every thread) over RUNS messages
// after 500 warm-up ones; also the header/author reading alone.
//
//   node bench/from-once.ts [root=this checkout] [runs=20000]
//
// Give another checkout as root (e.g. /work/main) to measure it the same way.
import { generateKeyPairSync } from "node:crypto";
import { dkimSign } from "mailauth";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(process.argv[2] ?? resolve(import.meta.dirname, ".."));
const RUNS = Number(process.argv[3] ?? 20_000);
const mod = async <T>(p: string): Promise<T> => (await import(pathToFileURL(resolve(root, p)).href)) as T;

interface Msg {
  headerFields(c: Buffer): unknown[];
  authorOf(c: Buffer, f?: unknown[]): unknown;
  MessageHead?: new (c: Buffer) => { fields: unknown[]; author: unknown };
}
const message = await mod<Msg>("src/message/index.ts");
const { SenderAuthCheck } = await mod<typeof import("../src/mailauth/index.ts")>("src/mailauth/index.ts");
const { ImpersonationCheck } = await mod<typeof import("../src/impersonation/index.ts")>("src/impersonation/index.ts");
const policy = await mod<typeof import("../src/policy/index.ts")>("src/policy/index.ts");
const { CheckRunner } = policy;
// The checks' transaction state: typed (src/policy state.ts) where the tree has it, a Map in older trees.
const TypedState = (policy as { TransactionState?: new () => unknown }).TransactionState;
const newState = (): unknown => (TypedState !== undefined ? new TypedState() : new Map());
const { VERDICT_DEFAULTS } = await mod<typeof import("../src/config/index.ts")>("src/config/index.ts");
const { createLogger } = await mod<typeof import("../src/log/index.ts")>("src/log/index.ts");

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod.\r\n".repeat(130);
const unsigned =
  "Received: from mta.sender.test (mta.sender.test [127.0.0.1])\r\n\tby mx.bench.test with ESMTPS; Fri, 27 Nov 2026 10:00:00 +0000\r\n" +
  "From: Bench Sender <sender@sender.test>\r\nTo: <sink@bench.test>\r\nSubject: From: once benchmark\r\n" +
  "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench-from@sender.test>\r\nMIME-Version: 1.0\r\n" +
  `Content-Type: text/plain; charset=us-ascii\r\n\r\n${body}`;
const signed = await dkimSign(unsigned, {
  signatureData: [{ signingDomain: "sender.test", selector: "sel", privateKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), algorithm: "rsa-sha256", canonicalization: "relaxed/simple" }],
} as never);
const content = Buffer.from(signed.signatures + unsigned);

const records: Record<string, string> = {
  "sel._domainkey.sender.test": `v=DKIM1; k=rsa; p=${publicKey.export({ type: "spki", format: "der" }).toString("base64")}`,
  "_dmarc.sender.test": "v=DMARC1; p=reject",
};
const resolver = (name: string, type: string): Promise<unknown> => {
  const txt = type === "TXT" ? records[name] : undefined;
  return txt === undefined ? Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: "ENOTFOUND" })) : Promise.resolve([[txt]]);
};
const auth = new SenderAuthCheck({ resolver, authservId: "mx.bench.test", checks: { trustedArcSealers: [], dmarcOverrides: {} }, localDomains: ["bench.test"] });
const imp = new ImpersonationCheck({ localDomains: ["bench.test"], enabled: true, externalTag: false, localAddresses: () => ["sink@bench.test", "alice.martin@bench.test"] });
const runner = new CheckRunner([auth, imp], VERDICT_DEFAULTS, 30_000);
const log = createLogger({ level: "silent" });
const shared = message.MessageHead !== undefined;

/** What the receiver does at the end of DATA, then the checks. */
async function one(): Promise<void> {
  const head = message.MessageHead ? new message.MessageHead(content) : undefined;
  if (!head) message.headerFields(content);
  const d = await runner.run("data", { clientIp: "127.0.0.1", helo: "mta.sender.test", mailFrom: "sender@sender.test", recipients: ["sink@bench.test"], content, ...(head ? { head } : {}), state: newState() } as never, log as never);
  if (!d.verdicts.includes("dmarc.pass")) throw new Error(`unexpected verdicts ${d.verdicts.join(" ")}`);
}

async function batch(n: number): Promise<number> {
  const t0 = process.cpuUsage();
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next++ < n) await one();
  }));
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / n;
}

await batch(500);
const perMessage = await batch(RUNS);

// The header section and author reading alone, as the tree does it per message.
const t0 = process.cpuUsage();
for (let i = 0; i < RUNS; i++) {
  if (message.MessageHead) void new message.MessageHead(content).author;
  else {
    message.headerFields(content); // the receiver (hop count)
    const f = message.headerFields(content); // DMARC / From: rules
    message.authorOf(content, f);
    message.authorOf(content); // impersonation
  }
}
const t = process.cpuUsage(t0);
auth.close();
console.log(JSON.stringify({ root, shared, runs: RUNS, size: content.length, dataChecksUsPerMessage: Math.round(perMessage * 10) / 10, headerAndAuthorUsPerMessage: Math.round(((t.user + t.system) / RUNS) * 100) / 100 }));
