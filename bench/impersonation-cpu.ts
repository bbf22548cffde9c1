// In-process CPU of the impersonation check (src/impersonation) with mail
// from many senders: 1,000 messages (about 10 KB, the shape of the engine
// bench's), each with another From: value (display names plain, quoted,
// encoded in B and Q, with a comment, some non-ASCII; 1,000 domains under
// a dozen public suffixes), the header section read as the receiver does
// (src/message MessageHead). Prints the thread CPU per message, in µs, of
// the From: parse alone, the header and author reading, the check's data
// hook and a CheckRunner round with it: the mean over RUNS messages after
// 2,000 warm-up ones.
//
//   node bench/impersonation-cpu.ts [root=this checkout] [runs=50000]
//
// Give another checkout as root (e.g. /work/main) to measure it the same
// way. A tight loop: in the server each of these costs several times more
// (docs/benchmarks.md, "The impersonation check's 0.07 ms").
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(process.argv[2] ?? resolve(import.meta.dirname, ".."));
const RUNS = Number(process.argv[3] ?? 50_000);
const N = 1000;
const mod = async <T>(p: string): Promise<T> => (await import(pathToFileURL(resolve(root, p)).href)) as T;
const message = await mod<typeof import("../src/message/index.ts")>("src/message/index.ts");
const { ImpersonationCheck } = await mod<typeof import("../src/impersonation/index.ts")>("src/impersonation/index.ts");
const policy = await mod<typeof import("../src/policy/index.ts")>("src/policy/index.ts");
const { VERDICT_DEFAULTS } = await mod<typeof import("../src/config/index.ts")>("src/config/index.ts");
const { createLogger } = await mod<typeof import("../src/log/index.ts")>("src/log/index.ts");

const first = ["Alice", "Bob", "Chloé", "Dmitri", "Émile", "François", "Günther", "Håkon", "Ivan", "Jürgen", "Zoë", "Łukasz", "Søren", "Анна", "Мария", "太郎", "Ngozi", "Olu", "Pål", "Quentin"];
const last = ["Martin", "Smith", "Müller", "Dubois", "O'Brien", "Nowak", "Иванов", "山田", "Rossi", "García", "Johansson", "Kowalski"];
const suffixes = ["com", "net", "org", "de", "fr", "co.uk", "io", "info", "com.au", "ru", "jp", "example"];
const pick = <T>(list: readonly T[], i: number): T => list[((i * 2654435761) >>> 0) % list.length] as T;
function from(i: number): string {
  const f = pick(first, i);
  const name = `${f} ${pick(last, i + 7)}`;
  const domain = `sender${i}.${pick(suffixes, i + 3)}`;
  switch (i % 5) {
    case 0:
      return `<${f.normalize("NFKD").replace(/[^a-zA-Z]/g, "").toLowerCase() || "x"}@${domain}>`;
    case 1:
      return `"${name}" <news-${i}@${domain}>`;
    case 2:
      return `=?utf-8?B?${Buffer.from(name).toString("base64")}?= <${i}@${domain}>`;
    case 3:
      return `${name.replace(/[^\x20-\x7e]/g, "e")} <user.${i}@mail.${domain}>`;
    default:
      return `=?iso-8859-1?Q?${name.replace(/[^\x20-\x7e]/g, "=E9").replace(/ /g, "_")}?= <x${i}@${domain}> (by way of a list)`;
  }
}
const body = `${"X".repeat(76)}\r\n`.repeat(130);
const messages = Array.from({ length: N }, (_, i) =>
  Buffer.from(
    `Received: from h${i}.test (h${i}.test [127.0.0.1])\r\n\tby mx.bench.test with ESMTP; Fri, 27 Nov 2026 10:00:00 +0000\r\n` +
      `From: ${from(i)}\r\nTo: <sink@bench.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-Id: <${i}.bench@h.test>\r\nSubject: message ${i}\r\n\r\n${body}`,
  ),
);
const values = messages.map((c) => {
  const head = new message.MessageHead(c);
  const f = head.fields.find((x) => x.name === "from");
  if (f === undefined) throw new Error("no From:");
  return message.fieldValue(c, f);
});
const check = new ImpersonationCheck({ localDomains: ["bench.test"], enabled: true, externalTag: false, localAddresses: () => ["sink@bench.test", "alice.martin@bench.test"] });
const runner = new policy.CheckRunner([check], VERDICT_DEFAULTS, 30_000);
const log = createLogger({ level: "silent" });
const signal = new AbortController().signal;
const input = (i: number) => {
  const content = messages[i] as Buffer;
  return { clientIp: "127.0.0.1", helo: "h.test", mailFrom: "a@b.test", recipients: ["sink@bench.test"], content, head: new message.MessageHead(content), state: new policy.TransactionState(), signal };
};

async function time(f: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < 2000; i++) await f(i % N);
  const t0 = process.cpuUsage();
  for (let i = 0; i < RUNS; i++) await f(i % N);
  const t = process.cpuUsage(t0);
  return Math.round(((t.user + t.system) / RUNS) * 100) / 100;
}
const result = {
  root,
  runs: RUNS,
  senders: N,
  parseAddressListUs: await time((i) => message.parseAddressList(values[i] as string)),
  headAndAuthorUs: await time((i) => new message.MessageHead(messages[i] as Buffer).author),
  headAloneUs: await time((i) => input(i)),
  headAndCheckUs: await time((i) => check.data(input(i))),
  headAndRunnerRoundUs: await time((i) => runner.run("data", input(i), log)),
};
console.log(JSON.stringify(result));
