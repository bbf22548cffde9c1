/**
 * The policy check interface and its runner (design principle 6).
 *
 * A check is a small module with a hook per SMTP phase (connect, helo, mail,
 * rcpt, data). A hook returns verdicts, named "check.result" (e.g.
 * "spf.fail", "dmarc.reject"), and may return header lines to put on top of
 * the message. The runner gives every hook that answers with a promise a
 * deadline (one that decides at once returns its outcome and needs none)
 * and maps each verdict to an action through the operator's table (config `checks.actions`);
 * verdicts not in the table are informational ("ignore"). The most severe
 * action wins: reject > tempfail > quarantine > tag > ignore.
 *
 * Fail closed: a hook that throws or misses its deadline makes the whole
 * phase a temporary failure (451 4.7.0), never "continue". Its error goes to
 * the log only; the client sees a generic text.
 *
 * A hook may also name the reply of a reject for one of its verdicts (the
 * DNSBL check names the client and the lists) and hand over log lines at
 * their own level; the runner writes them with the check's name.
 *
 * State shared between phases and checks is typed (state.ts): a
 * TransactionState per transaction (CheckInput.state) and a ConnectionState
 * per connection (CheckInput.connection).
 *
 * Checks: SPF/DKIM/ARC/DMARC (src/mailauth), DNSBL/DNSWL (dnsbl.ts); which
 * check runs on which road is decided in src/server/checks.ts, and the
 * pipeline of each listener role (src/server/pipeline) runs them.
 */
import type { CheckAction } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { reply, type Reply } from "../protocol/index.ts";
import { metrics } from "../metrics/index.ts";
import type { MessageHead } from "../message/index.ts";
import type { ConnectionState, TransactionState } from "./state.ts";

export type Phase = "connect" | "helo" | "mail" | "rcpt" | "data";

/** What a hook sees. Values are the parsed, checked ones from the protocol core. */
export interface CheckInput {
  readonly clientIp: string;
  readonly helo: string;
  /** "" for the null reverse-path. */
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  /** The listener that took the connection ("smtp", "submission", "submissions"); absent outside a connection. */
  readonly listener?: string;
  /** The account of a successful AUTH on the connection. */
  readonly authUser?: string;
  /** The connection's TLS, when it has one. */
  readonly tls?: { readonly version: string; readonly cipher: string };
  /**
   * For the content checks: what the inbound checks of this message decided
   * before them (their verdicts, and header fields such as
   * Authentication-Results). Absent when no inbound check ran.
   */
  readonly earlier?: { readonly verdicts: readonly string[]; readonly headers: readonly string[] };
  /** The message as received (data phase only), CRLF, no dot-stuffing. */
  readonly content?: Buffer;
  /**
   * The header section of `content` and its author (From:), read once per
   * message by the pipeline (src/message MessageHead) and shared by the
   * checks that need them (DMARC and the From: rules, impersonation). A
   * check given none (or one of other content) reads its own (headOf).
   */
  readonly head?: MessageHead;
  /** The transaction's state shared by the phases and checks (e.g. the SPF result of MAIL for DATA). */
  readonly state: TransactionState;
  /**
   * The connection's state, kept across the transactions of one connection
   * (same client address), for results that only depend on what the
   * connection fixes (e.g. SPF for a HELO name). Absent outside a connection.
   */
  readonly connection?: ConnectionState;
  /** Aborted when the deadline passes. */
  readonly signal: AbortSignal;
}

export interface CheckOutcome {
  readonly verdicts: readonly string[];
  /** Header fields ("Name: value", folded with CRLF + space, no final CRLF) to put on top of the message. */
  readonly headers?: readonly string[];
  /** Facts for the log line. */
  readonly notes?: Readonly<Record<string, unknown>>;
  /**
   * Lines for the log at their own level (e.g. a DNSBL answering with an
   * error code: "error"), written by the runner with the check's name.
   */
  readonly logs?: readonly CheckLog[];
  /** The reply to give when this verdict makes the action a reject or a tempfail (default: by the verdict's prefix). */
  readonly replies?: Readonly<Record<string, Reply>>;
  /**
   * Actions for this message's verdicts instead of the operator's table
   * (checks.actions), e.g. the attachment policy of its recipients' domains.
   */
  readonly actions?: Readonly<Record<string, CheckAction>>;
}

export interface CheckLog {
  readonly level: "error" | "warn" | "info";
  readonly msg: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

/** A hook; one that decides at once may return its outcome itself (the runner then sets no deadline timer for it). */
export type CheckHook = (input: CheckInput) => CheckOutcome | Promise<CheckOutcome>;

export interface Check {
  readonly name: string;
  /** Starts work for a new connection early (e.g. a DNS lookup) whose result a hook uses later. Must not throw. */
  readonly prefetch?: (clientIp: string) => void;
  readonly connect?: CheckHook;
  readonly helo?: CheckHook;
  readonly mail?: CheckHook;
  readonly rcpt?: CheckHook;
  readonly data?: CheckHook;
}

export interface Decision {
  readonly action: CheckAction;
  /** The reply for reject and tempfail. */
  readonly reply?: Reply;
  readonly verdicts: readonly string[];
  /** The verdicts that chose the action. */
  readonly triggered: readonly string[];
  readonly headers: readonly string[];
  /** A check threw or missed its deadline (the action is then tempfail). */
  readonly failed?: boolean;
  /** Replies the checks asked for, by verdict (CheckOutcome.replies). */
  readonly replies?: ReadonlyMap<string, Reply>;
}

const SEVERITY: Record<CheckAction, number> = { ignore: 0, tag: 1, quarantine: 2, tempfail: 3, reject: 4 };

export const CHECK_FAILED = reply(451, "4.7.0", "Temporary failure checking the message; try again later");
const TEMPFAIL = reply(451, "4.7.1", "Sender authentication could not be completed; try again later");
const TEMPFAIL_DNSBL = reply(451, "4.7.1", "Service temporarily unavailable; client listed by a DNS blocklist; try again later");

/** The reply for a reject, by the verdict that caused it (RFC 7372 codes where they exist). */
function rejectReply(verdict: string): Reply {
  if (verdict.startsWith("spf.")) return reply(550, "5.7.23", `SPF validation failed (${verdict})`);
  if (verdict.startsWith("dmarc.")) return reply(550, "5.7.1", `Message rejected by the sender domain's DMARC policy (${verdict})`);
  if (verdict.startsWith("dkim.")) return reply(550, "5.7.20", `No valid DKIM signature (${verdict})`);
  if (verdict.startsWith("dnsbl.")) return reply(550, "5.7.1", "Service unavailable; client blocked by a DNS blocklist");
  if (verdict === "from.multiple_domains") return reply(550, "5.7.1", `From: header names authors in more than one domain (${verdict})`);
  if (verdict.startsWith("from.")) return reply(550, "5.6.0", `Message must have exactly one From: header with a valid address (${verdict})`);
  if (verdict.startsWith("local.")) return reply(550, "5.7.1", `Sender in a local domain is not authenticated (${verdict})`);
  return reply(550, "5.7.1", `Message rejected by policy (${verdict})`);
}

/** A check's reply fit for a tempfail (a 4xx one; a 5xx reply named for a reject is not). */
function temporary(r: Reply | undefined): Reply | undefined {
  return r !== undefined && r.code >= 400 && r.code < 500 ? r : undefined;
}

/** A check's reply fit for a reject (a 5xx one). */
function permanent(r: Reply | undefined): Reply | undefined {
  return r !== undefined && r.code >= 500 ? r : undefined;
}

class Deadline extends Error {}

/** A hook's answer still to come: any thenable (a native promise, another realm's, a PromiseLike), which Promise.race adopts. */
function pending(a: unknown): a is PromiseLike<CheckOutcome> {
  return typeof a === "object" && a !== null && typeof (a as { then?: unknown }).then === "function";
}

/** (check, verdict) pairs whose counter is bound once (below); more are counted through metrics.inc, the same series. */
const MAX_BOUND_VERDICTS = 512;
/** Longest check + verdict name bound (verdicts are our checks' own names; a longer one is counted through metrics.inc). */
const MAX_BOUND_VERDICT_CHARS = 200;
const verdictCounters = new Map<string, { inc(n?: number): void }>();

/**
 * Counts one verdict in wardmail_check_verdicts_total{check, verdict}: a
 * counter bound once per pair (metrics.counter), so the series key (sorted
 * labels, JSON-quoted values) is not built again for every verdict of every
 * message. The registry never drops a series, so the count is the same.
 */
function countVerdict(check: string, verdict: string): void {
  const key = `${check}\0${verdict}`;
  let counter = verdictCounters.get(key);
  if (counter === undefined) {
    if (verdictCounters.size >= MAX_BOUND_VERDICTS || key.length > MAX_BOUND_VERDICT_CHARS) return metrics.inc("wardmail_check_verdicts_total", { check, verdict });
    counter = metrics.counter("wardmail_check_verdicts_total", { check, verdict });
    verdictCounters.set(key, counter);
  }
  counter.inc();
}

export class CheckRunner {
  private readonly checks: readonly Check[];
  private readonly actions: Readonly<Record<string, CheckAction>>;
  private readonly timeoutMs: number;

  constructor(checks: readonly Check[], actions: Readonly<Record<string, CheckAction>>, timeoutMs: number) {
    this.checks = checks;
    this.actions = actions;
    this.timeoutMs = timeoutMs;
  }

  /** A client connected: the checks start what they can early (Check.prefetch). */
  prefetch(clientIp: string): void {
    for (const c of this.checks) {
      try {
        c.prefetch?.(clientIp);
      } catch {
        // Only a head start: the hook does the work again if this failed.
      }
    }
  }

  /** True when some check has a hook for this phase. */
  has(phase: Phase): boolean {
    return this.checks.some((c) => c[phase] !== undefined);
  }

  /** Runs every hook of the phase (concurrently) and decides. Never throws. */
  async run(phase: Phase, input: Omit<CheckInput, "signal">, log: Logger): Promise<Decision> {
    const hooks = this.checks.flatMap((c) => (c[phase] ? [{ name: c.name, hook: c[phase] }] : []));
    if (hooks.length === 0) return { action: "ignore", verdicts: [], triggered: [], headers: [] };
    const controller = new AbortController();
    const full: CheckInput = { ...input, signal: controller.signal };
    // Hooks that answered at once (the usual case for the checks that only read the message) need no
    // deadline: the timer, the race and the settling are paid only when some hook is still at work.
    const answers: (CheckOutcome | Promise<CheckOutcome>)[] = [];
    let later = false;
    for (const { hook } of hooks) {
      let a: CheckOutcome | Promise<CheckOutcome>;
      try {
        a = hook(full);
      } catch (err) {
        a = Promise.reject(err as Error);
      }
      // Any thenable is an answer to come: it gets the deadline.
      if (pending(a)) later = true;
      answers.push(a);
    }
    let results: PromiseSettledResult<CheckOutcome>[];
    if (later) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort();
          reject(new Deadline(`deadline of ${this.timeoutMs} ms passed`));
        }, this.timeoutMs);
      });
      results = await Promise.allSettled(answers.map((a) => (pending(a) ? Promise.race([a, deadline]) : Promise.resolve(a))));
      clearTimeout(timer);
    } else {
      results = answers.map((value) => ({ status: "fulfilled", value: value as CheckOutcome }));
    }
    const verdicts: string[] = [];
    const headers: string[] = [];
    const replies = new Map<string, Reply>();
    const actions = new Map<string, CheckAction>();
    for (const [i, r] of results.entries()) {
      const name = hooks[i]?.name ?? "?";
      if (r.status === "rejected") {
        const err = r.reason as Error;
        log.error({ check: name, phase, err: err.message, timeout: err instanceof Deadline }, "check failed; answered 451 (fail closed)");
        countVerdict(name, `${name}.error`);
        return { action: "tempfail", reply: CHECK_FAILED, verdicts, triggered: [`${name}.error`], headers: [], failed: true };
      }
      verdicts.push(...r.value.verdicts);
      for (const v of r.value.verdicts) countVerdict(name, v);
      headers.push(...(r.value.headers ?? []));
      if (r.value.notes) log.debug({ check: name, phase, ...r.value.notes }, "check result");
      for (const l of r.value.logs ?? []) log[l.level]({ check: name, phase, ...l.fields }, l.msg);
      for (const [v, rep] of Object.entries(r.value.replies ?? {})) replies.set(v, rep);
      for (const [v, a] of Object.entries(r.value.actions ?? {})) actions.set(v, a);
    }
    return this.decide(verdicts, headers, replies, actions);
  }

  /**
   * Two decisions on one message (the inbound checks', then the content
   * checks'): the more severe action wins with its reply; headers and
   * verdicts add up.
   */
  static merge(a: Decision, b: Decision): Decision {
    const first = SEVERITY[b.action] > SEVERITY[a.action] ? b : a;
    const triggered = a.action === b.action && a.action !== "ignore" ? [...a.triggered, ...b.triggered] : first.triggered;
    const replies = new Map([...(a.replies ?? []), ...(b.replies ?? [])]);
    return {
      action: first.action,
      ...(first.reply ? { reply: first.reply } : {}),
      verdicts: [...a.verdicts, ...b.verdicts],
      triggered,
      headers: [...a.headers, ...b.headers],
      ...(replies.size > 0 ? { replies } : {}),
    };
  }

  /** Maps verdicts to the most severe action; `replies` (by verdict) overrides the default reject reply. */
  decide(verdicts: readonly string[], headers: readonly string[] = [], replies?: ReadonlyMap<string, Reply>, actions?: ReadonlyMap<string, CheckAction>): Decision {
    let action: CheckAction = "ignore";
    let triggered: string[] = [];
    for (const v of verdicts) {
      const a = actions?.get(v) ?? this.actions[v] ?? "ignore";
      if (SEVERITY[a] > SEVERITY[action]) {
        action = a;
        triggered = [v];
      } else if (a === action && a !== "ignore") {
        triggered.push(v);
      }
    }
    const first = triggered[0] ?? "";
    const r = action === "reject" ? (permanent(replies?.get(first)) ?? rejectReply(first)) : action === "tempfail" ? (temporary(replies?.get(first)) ?? (first.startsWith("dnsbl.") ? TEMPFAIL_DNSBL : TEMPFAIL)) : undefined;
    return { action, ...(r ? { reply: r } : {}), verdicts, triggered, headers, ...(replies && replies.size > 0 ? { replies } : {}) };
  }
}

export { ConnectionState, TransactionState, SPF_PER_CONNECTION, type KeptSpf } from "./state.ts";
export { DnsblCheck, reversedName, errorCode } from "./dnsbl.ts";
export type { DnsblOptions, DnsblResult, ZoneResult } from "./dnsbl.ts";
