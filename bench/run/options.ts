// bench/run.ts's command line: its options, defaults and --help text.
import path from "node:path";
import { parseArgs } from "node:util";
import { fsModeOf, type FsMode } from "../fs.ts";
import { BENCH_IN_FLOW_DELAY, inFlowDelayValue } from "../../test/peers/postfix.ts";
import type { RSPAMD_SERVER } from "../spam.ts";
import { REPO_ROOT } from "../wardmail.ts";

/** "wardmail-plain": spool.encrypt = false (--spool-plain); "wardmail-av": [antivirus] on a clamd started by the bench (--antivirus). */
export type ServerName = "postfix" | "wardmail" | "wardmail-plain" | "wardmail-av" | typeof RSPAMD_SERVER;

export interface Options {
  runs: number;
  messages: number;
  sessions: number;
  size: number;
  cases: number[];
  warmup: number;
  timeoutMs: number;
  only: ServerName | undefined;
  out: string;
  /** Replaces bench/wardmail.ts's default command: placeholders {config} {smtpPort} {dataDir}. */
  wardmailCmd: string | undefined;
  connMode: "batch" | "exact";
  /** What Wardmail does with the mail after the 250: discard (as Postfix here) or Maildir. */
  wardmailDelivery: "discard" | "maildir";
  /** Postfix's in_flow_delay (BENCH_IN_FLOW_DELAY: tuned for throughput). */
  postfixInFlowDelay: string;
  /** --wardmail-limits: [limits] for Wardmail on top of bench/wardmail.ts BENCH_LIMITS. */
  wardmailLimits: Record<string, number>;
  /** --rspamd: also a Wardmail with spam scoring by a real rspamd (bench/spam.ts). */
  rspamd: boolean;
  /** --spool-plain: also a Wardmail with spool.encrypt = false. */
  spoolPlain: boolean;
  /** --antivirus: also measure Wardmail with ClamAV (a clamd on loopback) against the same Wardmail without it. */
  antivirus: boolean;
  /** --fs: where the servers' files go (bench/fs.ts). */
  fs: FsMode;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench: ${msg}`);
  console.error(`usage: node bench/run.ts [options]
  --runs N          runs per case and server (default 3)
  --messages N      messages per run (default 3000; a multiple of every --cases value)
  --sessions N      concurrent SMTP sessions (default 50)
  --size BYTES      message body size for smtp-source -l (default 10240)
  --cases LIST      messages per connection, comma-separated (default 1,10)
  --conn-mode M     exact | batch: how cases > 1 are generated (default exact; see bench/README.md)
  --wardmail-delivery D  discard | maildir: Wardmail's delivery after the durable 250
                    (default discard, like the Postfix side; maildir adds fsynced Maildir writes)
  --warmup N        warm-up messages per server before measuring, not reported (default 200; 0 = none)
  --timeout-s N     hard limit for one run's load (default 180)
  --only NAME       postfix | wardmail: run one server only
  --postfix-in-flow-delay T  Postfix in_flow_delay (default ${BENCH_IN_FLOW_DELAY}, tuned for throughput; 1s is Postfix's default)
  --out FILE        JSON result (default bench/out/latest.json)
  --fs auto|host    the servers' files on a journaled ext4 the bench mounts where os.tmpdir() is an
                    ext4 without a journal (auto, the default; bench/fs.ts), or on os.tmpdir() as it is
  --spool-plain     also run a second Wardmail with spool.encrypt = false (same run, alternating): the cost of the encrypted spool
  --wardmail-cmd T  run T instead of "bin/wardmail serve --config {config}"
                    (whitespace-separated; placeholders {config} {smtpPort} {dataDir})
  --wardmail-limits L  extra [limits] for Wardmail, "key=value,key=value" (e.g. pregreet_delay=0
                    to measure the pregreet pause, pregreet_pass_time=0 to pay it on every connection)
  --rspamd          also measure a Wardmail with [spam] rspamd on (a real rspamd, test config), same run
  --antivirus       start a clamd (test/peers/clamd.ts: one-line EICAR database) and a second Wardmail
                    scanning with it ("wardmail-av"); the plain Wardmail gets antivirus.enabled = false`);
  process.exit(2);
}

export function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: "string" },
        messages: { type: "string" },
        sessions: { type: "string" },
        size: { type: "string" },
        cases: { type: "string" },
        warmup: { type: "string" },
        "timeout-s": { type: "string" },
        only: { type: "string" },
        out: { type: "string" },
        "wardmail-cmd": { type: "string" },
        "conn-mode": { type: "string" },
        "wardmail-delivery": { type: "string" },
        "postfix-in-flow-delay": { type: "string" },
        "spool-plain": { type: "boolean" },
        "wardmail-limits": { type: "string" },
        rspamd: { type: "boolean" },
        antivirus: { type: "boolean" },
        fs: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  if (values.help) usage();
  const int = (name: string, v: string | undefined, def: number, min: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const cases = (values.cases ?? "1,10").split(",").map((s) => Number(s.trim()));
  if (cases.some((c) => !Number.isInteger(c) || c < 1)) usage("--cases must be positive integers");
  const o: Options = {
    runs: int("runs", values.runs, 3, 1),
    messages: int("messages", values.messages, 3000, 1),
    sessions: int("sessions", values.sessions, 50, 1),
    size: int("size", values.size, 10240, 1),
    cases,
    warmup: int("warmup", values.warmup, 200, 0),
    timeoutMs: int("timeout-s", values["timeout-s"], 180, 1) * 1000,
    only: undefined,
    out: values.out ?? path.join(REPO_ROOT, "bench", "out", "latest.json"),
    wardmailCmd: values["wardmail-cmd"],
    connMode: "exact",
    wardmailDelivery: "discard",
    postfixInFlowDelay: inFlowDelayValue(values["postfix-in-flow-delay"] ?? BENCH_IN_FLOW_DELAY) ?? usage("--postfix-in-flow-delay must be seconds, e.g. 0 or 1s"),
    wardmailLimits: {},
    rspamd: values.rspamd === true,
    spoolPlain: values["spool-plain"] === true,
    antivirus: values.antivirus === true,
    fs: fsModeOf(values.fs) ?? usage("--fs must be auto or host"),
  };
  for (const kv of (values["wardmail-limits"] ?? "").split(",").filter((x) => x.trim() !== "")) {
    const [k, v] = kv.split("=").map((x) => x.trim());
    if (!k || !/^[a-z_0-9]+$/.test(k) || !Number.isInteger(Number(v))) usage(`--wardmail-limits: bad entry ${kv}`);
    o.wardmailLimits[k] = Number(v);
  }
  const d = values["wardmail-delivery"];
  if (d !== undefined) {
    if (d !== "discard" && d !== "maildir") usage("--wardmail-delivery must be discard or maildir");
    o.wardmailDelivery = d;
  }
  if (values["conn-mode"] !== undefined) {
    if (values["conn-mode"] !== "batch" && values["conn-mode"] !== "exact") usage("--conn-mode must be batch or exact");
    o.connMode = values["conn-mode"];
  }
  if (values.only !== undefined) {
    if (values.only !== "postfix" && values.only !== "wardmail") usage("--only must be postfix or wardmail");
    o.only = values.only;
  }
  for (const c of o.cases) if (o.messages % c !== 0) usage(`--messages ${o.messages} is not a multiple of ${c} messages per connection`);
  return o;
}
