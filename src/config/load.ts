/**
 * The config loader: TOML text → checked, normalised, deeply frozen Config.
 *
 * The file holds only what differs from the embedded defaults; each key the
 * file gives replaces the default (arrays and the alias table as a whole).
 * Every problem is collected as a ConfigIssue naming the dotted key, the
 * 1-based line of that key in the file (or of its nearest parent, or 0) and
 * what was expected; nothing is reported one at a time. parseConfig is pure;
 * loadConfig and checkConfigFile also read the file and check that the
 * certificate files exist.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parse, TomlError } from "smol-toml";
import type { DnsblZone, RelayHost } from "./types.ts";
import type { ClamdTarget } from "./types.ts";
import type { Limits } from "../limits/index.ts";
import type { AliasTable, CheckContext, Field, LmtpTable } from "./keys.ts";
import { SECTIONS } from "./keys.ts";
import type { PathSegment } from "./locate.ts";
import { keyPath, lineOf, scanKeyLines } from "./locate.ts";
import { checkSemantics } from "./semantic.ts";
import { applyHttpsListenDefault } from "./semantic.ts";
import { configWarnings, type WarningOptions } from "./warnings.ts";
import { describe, isTable } from "./syntax.ts";
import type { CertificatePair, Config, ListenAddress, LmtpTarget } from "./types.ts";

export interface ConfigIssue {
  /** Dotted key path, e.g. "limits.max_recipients"; "" for the file as a whole. */
  key: string;
  /** 1-based line in the file; 0 when the key (and its table) is not in the file. */
  line: number;
  /** What was expected, or what is wrong. */
  message: string;
}

/** "file:line: key: message", one issue a line; warnings as "file:line: key: warning: message". */
export function formatIssues(file: string, issues: readonly ConfigIssue[], prefix = ""): string {
  return issues.map((i) => `${file}:${i.line}: ${i.key === "" ? "" : `${i.key}: `}${prefix}${i.message}`).join("\n");
}

export class ConfigError extends Error {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];
  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(formatIssues(file, issues));
    this.name = "ConfigError";
    this.file = file;
    this.issues = Object.freeze(issues.map((i) => Object.freeze({ ...i })));
  }
}

export interface ParseOptions {
  /** Name used in messages; relative certificate paths resolve against its directory. */
  readonly file: string;
  /** Environment for WARDMAIL_HOME; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Directory relative paths (data_dir, file) resolve against; default process.cwd(). */
  readonly cwd?: string;
}

/** Largest config file read; a bigger one is surely a mistake. */
const MAX_FILE_BYTES = 1024 * 1024;

interface Outcome {
  config?: Config;
  issues: ConfigIssue[];
  /** Certificate files to look for, with the key path that named them. */
  files: { path: PathSegment[]; file: string }[];
  lines: ReadonlyMap<string, number>;
  /** Dotted keys the file wrote. */
  fromFile: ReadonlySet<string>;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function unknownKey(name: string, known: readonly string[], where: string): string {
  const best = known
    .map((k) => ({ k, d: editDistance(name.toLowerCase(), k) }))
    .sort((x, y) => x.d - y.d)[0];
  if (best && best.d <= Math.max(1, Math.floor(best.k.length / 3))) return `unknown key; did you mean "${best.k}"?`;
  return `unknown key; expected one of ${where}: ${known.join(", ")}`;
}

function collect(source: string, opts: ParseOptions): Outcome {
  const env = opts.env ?? process.env;
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const issues: ConfigIssue[] = [];
  const files: Outcome["files"] = [];
  let doc: Record<string, unknown>;
  try {
    doc = parse(source.startsWith("\uFEFF") ? source.slice(1) : source);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const what = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
    issues.push({ key: "", line: err.line, message: `TOML syntax error at column ${err.column}: ${what}` });
    return { issues, files, lines: new Map(), fromFile: new Set() };
  }
  const lines = scanKeyLines(source);
  const ctx: CheckContext = {
    issue: (p, message) => issues.push({ key: keyPath(p), line: lineOf(lines, p), message }),
    fileDir: path.dirname(path.resolve(cwd, opts.file)),
    cwd,
    resolve: (base, p) => path.resolve(base, p),
  };

  for (const [name, value] of Object.entries(doc)) {
    if (!SECTIONS.has(name)) {
      ctx.issue([name], unknownKey(name, [...SECTIONS.keys()], "the sections"));
    } else if (!isTable(value)) {
      ctx.issue([name], `expected a table ([${name}]), got ${describe(value)}`);
    }
  }

  const values = new Map<string, unknown>();
  const fromFile = new Set<string>();
  const home = env.WARDMAIL_HOME;
  for (const [section, fields] of SECTIONS) {
    const given = doc[section];
    const table = isTable(given) ? given : {};
    const names = fields.map((f) => f.name);
    for (const key of Object.keys(table)) {
      if (!names.includes(key)) ctx.issue([section, key], unknownKey(key, names, `in [${section}]`));
    }
    for (const field of fields) {
      const dotted = `${section}.${field.name}`;
      let value: unknown;
      let checkCtx = ctx;
      if (Object.hasOwn(table, field.name)) {
        value = table[field.name];
        fromFile.add(dotted);
      } else {
        value = dotted === "server.data_dir" && home ? home : field.default;
        const note = dotted === "server.data_dir" && home ? "from WARDMAIL_HOME" : "a default value";
        checkCtx = { ...ctx, issue: (p, m) => ctx.issue(p, `${m} (${note})`) };
      }
      const checked = field.check(value, [section, field.name], checkCtx);
      if (checked !== undefined) values.set(dotted, checked);
    }
  }
  applyHttpsListenDefault(values, fromFile);
  checkSemantics(values, fromFile, ctx);

  const certs = values.get("tls.certificates") as readonly (CertificatePair | undefined)[] | undefined;
  certs?.forEach((c, i) => {
    if (c === undefined) return;
    files.push({ path: ["tls", "certificates", i, "cert"], file: c.cert });
    files.push({ path: ["tls", "certificates", i, "key"], file: c.key });
  });
  const arcKey = values.get("checks.arc_seal_key");
  if (typeof arcKey === "string" && arcKey !== "") files.push({ path: ["checks", "arc_seal_key"], file: arcKey });
  if (issues.length > 0) return { issues: sortIssues(issues), files, lines, fromFile };
  return { config: build(values), issues, files, lines, fromFile };
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.map((issue, order) => ({ issue, order }))
    .sort((a, b) => a.issue.line - b.issue.line || a.order - b.order)
    .map((x) => x.issue);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Builds the Config from checked values; every key is present and of the right type here. */
function build(values: ReadonlyMap<string, unknown>): Config {
  const get = <T>(key: string): T => values.get(key) as T;
  const limits = Object.fromEntries(
    (SECTIONS.get("limits") ?? []).map((f: Field) => [f.name, get<number>(`limits.${f.name}`)]),
  ) as unknown as Limits;
  const dataDir = get<string>("server.data_dir");
  const aliases: Record<string, readonly string[]> = {};
  for (const a of get<AliasTable>("local.aliases").entries) {
    aliases[a.address] = [...new Set(a.targets.filter((t) => t !== undefined))];
  }
  const lmtp: Record<string, LmtpTarget> = {};
  for (const e of get<LmtpTable>("local.lmtp").entries) lmtp[e.domain] = e.target;
  const config: Config = {
    server: {
      hostname: get("server.hostname"),
      dataDir,
      workers: get("server.workers"),
      user: get("server.user"),
      group: get("server.group"),
    },
    smtp: { listen: get<ListenAddress[]>("smtp.listen") },
    submission: { listen: get<ListenAddress[]>("submission.listen") },
    submissions: { listen: get<ListenAddress[]>("submissions.listen") },
    tls: {
      certificates: get<CertificatePair[]>("tls.certificates"),
      minVersion: get("tls.min_version"),
      ciphers: get("tls.ciphers"),
      groups: get("tls.groups"),
      mxSessionTickets: get("tls.mx_session_tickets"),
      watch: get("tls.watch"),
    },
    limits,
    protocol: {
      bareLineEndings: get("protocol.bare_line_endings"),
      eightBitWithout8bitmime: get("protocol.eight_bit_without_8bitmime"),
      strictPipelining: get("protocol.strict_pipelining"),
    },
    spool: { maxBatch: get("spool.max_batch"), encrypt: get("spool.encrypt") },
    local: {
      domains: get("local.domains"),
      mailboxes: get("local.mailboxes"),
      discard: get("local.discard"),
      aliases,
      maildir: path.resolve(dataDir, get<string>("local.maildir")),
      lmtp,
    },
    auth: {
      mechanisms: get("auth.mechanisms"),
      onMx: get("auth.on_mx"),
      failureDelay: get("auth.failure_delay"),
      maxFailureDelay: get("auth.max_failure_delay"),
      ipMaxFailures: get("auth.ip_max_failures"),
      ipWindow: get("auth.ip_window"),
      ipBlock: get("auth.ip_block"),
      accountMaxFailures: get("auth.account_max_failures"),
      accountWindow: get("auth.account_window"),
      accountLock: get("auth.account_lock"),
      knownNetworkWindow: get("auth.known_network_window"),
    },
    relay: { trustedNetworks: get("relay.trusted_networks") },
    accounts: {
      maxMessagesPerHour: get("accounts.max_messages_per_hour"),
      maxRecipientsPerHour: get("accounts.max_recipients_per_hour"),
    },
    accountHold: {
      holdFactor: get("accounts.hold_factor"),
      holdMinMessages: get("accounts.hold_min_messages"),
      holdMinRecipients: get("accounts.hold_min_recipients"),
      holdHistory: get("accounts.hold_history"),
      holdRefusedPercent: get("accounts.hold_refused_percent"),
      holdRefusedMin: get("accounts.hold_refused_min"),
    },
    dns: {
      servers: get<ListenAddress[]>("dns.servers"),
      timeout: get("dns.timeout"),
      attempts: get("dns.attempts"),
      cacheSize: get("dns.cache_size"),
      trustAd: get("dns.trust_ad"),
    },
    checks: {
      enabled: get("checks.enabled"),
      authservId: get("checks.authserv_id"),
      timeout: get("checks.timeout"),
      trustedArcSealers: get("checks.trusted_arc_sealers"),
      ...(get<string>("checks.arc_seal_domain") === ""
        ? {}
        : { arcSeal: { domain: get<string>("checks.arc_seal_domain"), selector: get<string>("checks.arc_seal_selector"), key: get<string>("checks.arc_seal_key") } }),
      actions: get("checks.actions"),
      dmarcOverrides: get("checks.dmarc_overrides"),
    },
    dnsbl: {
      zones: get<(DnsblZone | undefined)[]>("dnsbl.zones").filter((z): z is DnsblZone => z !== undefined),
      threshold: get("dnsbl.threshold"),
      timeout: get("dnsbl.timeout"),
    },
    spam: {
      rspamd: get("spam.rspamd"),
      timeout: get("spam.timeout"),
      maxSize: get("spam.max_size"),
    },
    impersonation: {
      enabled: get("impersonation.enabled"),
      externalTag: get("impersonation.external_tag"),
    },
    antivirus: {
      enabled: get("antivirus.enabled"),
      ...(get<unknown>("antivirus.clamd") === "" ? {} : { clamd: get<ClamdTarget>("antivirus.clamd") }),
      timeout: get("antivirus.timeout"),
      maxSize: get("antivirus.max_size"),
    },
    attachments: {
      enabled: get("attachments.enabled"),
      maxDepth: get("attachments.max_depth"),
      maxArchiveEntries: get("attachments.max_archive_entries"),
      maxUnpacked: get("attachments.max_unpacked"),
      overrides: get("attachments.overrides"),
    },
    queue: {
      retryMin: get("queue.retry_min"),
      concurrency: get("queue.concurrency"),
      retryMax: get("queue.retry_max"),
      lifetime: get("queue.lifetime"),
      delayNotice: get("queue.delay_notice"),
    },
    outbound: {
      port: get("outbound.port"),
      maxConnectionsPerDomain: get("outbound.max_connections_per_domain"),
      messagesPerConnection: get("outbound.messages_per_connection"),
      connectionCacheTime: get("outbound.connection_cache_time"),
      connectionMaxAge: get("outbound.connection_max_age"),
      tlsPolicy: get("outbound.tls_policy"),
      tlsrptInterval: get("outbound.tlsrpt_interval"),
      relays: get<(RelayHost | undefined)[]>("outbound.relays").filter((r): r is RelayHost => r !== undefined),
    },
    log: { level: get("log.level") },
    metrics: { listen: get<ListenAddress[]>("metrics.listen") },
    acme: {
      directory: get("acme.directory"),
      email: get("acme.email"),
      domains: get("acme.domains"),
      httpListen: get<ListenAddress[]>("acme.http_listen"),
      caFile: get("acme.ca_file"),
      renewBefore: get("acme.renew_before"),
      keepKey: get("acme.keep_key"),
    },
    https: {
      listen: get<ListenAddress[]>("https.listen"),
      mtaStsMode: get("https.mta_sts_mode"),
      mtaStsMx: get("https.mta_sts_mx"),
      mtaStsMaxAge: get("https.mta_sts_max_age"),
      imapHost: get("https.imap_host"),
      imapPort: get("https.imap_port"),
      imapTls: get("https.imap_tls"),
    },
  };
  // Copy before freezing so nothing reachable from FIELDS defaults is ever frozen or shared.
  return deepFreeze(structuredClone(config));
}

/** Parses and checks TOML text. Throws ConfigError listing every problem found. */
export function parseConfig(source: string, opts: ParseOptions): Config {
  const out = collect(source, opts);
  if (out.config === undefined) throw new ConfigError(opts.file, out.issues);
  return out.config;
}

/** The embedded defaults (data_dir from WARDMAIL_HOME when set). */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  return parseConfig("", { file: "<defaults>", env, cwd });
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: "the file does not exist",
  EACCES: "permission denied",
  EISDIR: "this is a directory, expected a file",
};

type ReadResult = { ok: true; text: string } | { ok: false; issue: ConfigIssue };

async function readConfigFile(file: string): Promise<ReadResult> {
  let bytes: Buffer;
  try {
    const st = await stat(file);
    if (st.isFile() && st.size > MAX_FILE_BYTES) {
      return { ok: false, issue: { key: "", line: 0, message: `cannot read the config file: larger than ${MAX_FILE_BYTES} bytes` } };
    }
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const why = READ_ERRORS[code] ?? (err instanceof Error ? err.message : String(err));
    return { ok: false, issue: { key: "", line: 0, message: `cannot read the config file: ${why}` } };
  }
  try {
    return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    return { ok: false, issue: { key: "", line: 0, message: "cannot read the config file: not valid UTF-8" } };
  }
}

/** Issues for certificate files that are missing or not regular files. */
async function checkFiles(out: Outcome): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  for (const f of out.files) {
    let problem: string | undefined;
    try {
      if (!(await stat(f.file)).isFile()) problem = "is not a regular file";
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      problem = code === "ENOENT" ? "does not exist" : `cannot be checked (${code || "error"})`;
    }
    if (problem !== undefined) {
      issues.push({ key: keyPath(f.path), line: lineOf(out.lines, f.path), message: `${f.file} ${problem}; expected a PEM file` });
    }
  }
  return issues;
}

/**
 * Reads and checks a config file; `undefined` gives the defaults. Throws
 * ConfigError for an unreadable file (key "", line 0) or any problem in it.
 */
export async function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  return (await loadConfigWithWarnings(file, env)).config;
}

/** loadConfig, and the warnings about the config (warnings.ts) for `serve` to log. */
export async function loadConfigWithWarnings(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  opts?: WarningOptions,
): Promise<{ config: Config; warnings: ConfigIssue[] }> {
  const read: ReadResult = file === undefined ? { ok: true, text: "" } : await readConfigFile(file);
  const name = file ?? "<defaults>";
  if (!read.ok) throw new ConfigError(name, [read.issue]);
  const out = collect(read.text, { file: name, env });
  if (out.config === undefined) throw new ConfigError(name, out.issues);
  const fileIssues = await checkFiles(out);
  if (fileIssues.length > 0) throw new ConfigError(name, fileIssues);
  return { config: out.config, warnings: await warningsOf(out, out.config, opts) };
}

function warningsOf(out: Outcome, config: Config, opts: WarningOptions | undefined): Promise<ConfigIssue[]> {
  return configWarnings(config, { line: (p) => lineOf(out.lines, p), written: (k) => out.fromFile.has(k) }, opts);
}

export interface CheckResult {
  ok: boolean;
  issues: ConfigIssue[];
  /** Warnings about a valid config (warnings.ts); empty when it is not valid. */
  warnings: ConfigIssue[];
  /** False when the file could not be read at all (for `wardmail config check`: exit 2). */
  readable: boolean;
}

/** Checks a config file and reports every problem found, without throwing. */
export async function checkConfigFile(file: string, opts?: WarningOptions): Promise<CheckResult> {
  const read = await readConfigFile(file);
  if (!read.ok) return { ok: false, issues: [read.issue], warnings: [], readable: false };
  const out = collect(read.text, { file });
  const issues = sortIssues([...out.issues, ...(await checkFiles(out))]);
  const warnings = issues.length === 0 && out.config !== undefined ? await warningsOf(out, out.config, opts) : [];
  return { ok: issues.length === 0, issues, warnings, readable: true };
}
