/**
 * Rules that span several config keys, run after every key has been checked
 * on its own: group needs user; mailboxes, aliases and LMTP domains live in
 * local domains;
 * an alias is not also a mailbox; local alias targets exist; aliases have no
 * cycles; no two listeners collide on one address:port; no trusted network
 * is all of IPv4 or IPv6.
 *
 * Input is the map of normalised values by dotted key ("local.domains");
 * a key whose own check failed is absent, and rules needing it are skipped.
 * Arrays may hold `undefined` where an element was bad (already reported):
 * those elements are skipped, and a domain list with a bad element is not
 * used to judge other keys.
 * `fromFile` says which keys the operator wrote, so messages about values
 * that came from the defaults can say so.
 */
import type { AliasEntry, AliasTable, CheckContext, LmtpTable } from "./keys.ts";
import { domainOf, formatListen, listenOverlaps } from "./syntax.ts";
import type { ListenAddress } from "./types.ts";
import { coversEverything } from "./warnings.ts";

export function checkSemantics(
  values: ReadonlyMap<string, unknown>,
  fromFile: ReadonlySet<string>,
  ctx: CheckContext,
): void {
  checkAccount(values, ctx);
  checkLocal(values, fromFile, ctx);
  checkListeners(values, fromFile, ctx);
  checkArcSeal(values, ctx);
  checkDnsblTimeout(values, fromFile, ctx);
  checkSpamTimeout(values, fromFile, ctx);
  checkAntivirusTimeout(values, fromFile, ctx);
  checkTrustedNetworks(values, ctx);
}

/**
 * The HTTPS listener is on by default when ACME is configured: with
 * acme.directory set and https.listen not written in the file, it listens on
 * port 443 of each host of acme.http_listen ("0.0.0.0:80" gives
 * "0.0.0.0:443"). An explicit `https.listen = []` keeps it off. Runs before
 * the other rules, so they (and `config check`) judge the effective value.
 */
export function applyHttpsListenDefault(values: Map<string, unknown>, fromFile: ReadonlySet<string>): void {
  if (fromFile.has("https.listen")) return;
  const directory = values.get("acme.directory");
  const http = values.get("acme.http_listen") as readonly (ListenAddress | undefined)[] | undefined;
  if (typeof directory !== "string" || directory === "" || http === undefined) return;
  const hosts = [...new Set(http.flatMap((a) => (a === undefined ? [] : [a.host])))];
  values.set("https.listen", hosts.map((host): ListenAddress => ({ host, port: HTTPS_PORT })));
}

const HTTPS_PORT = 443;

/** Trusting every address as a relay client makes an open relay: refused, whatever else is set. */
function checkTrustedNetworks(values: ReadonlyMap<string, unknown>, ctx: CheckContext): void {
  const networks = values.get("relay.trusted_networks") as readonly (string | undefined)[] | undefined;
  networks?.forEach((n, i) => {
    const family = n === undefined ? undefined : coversEverything(n);
    if (family !== undefined) {
      ctx.issue(["relay", "trusted_networks", i], `${n} is every ${family} address: the whole Internet could relay through this server without AUTH (an open relay); expected only networks you control`);
    }
  });
}

/** rspamd's answer must come before the checks' deadline, so that rspamd down is spam.error (the operator's action), not 451. */
function checkSpamTimeout(values: ReadonlyMap<string, unknown>, fromFile: ReadonlySet<string>, ctx: CheckContext): void {
  const url = values.get("spam.rspamd");
  const spam = values.get("spam.timeout");
  const checks = values.get("checks.timeout");
  if (url === undefined || url === "" || typeof spam !== "number" || typeof checks !== "number" || spam < checks) return;
  const note = fromFile.has("spam.timeout") ? "" : " (a default value)";
  ctx.issue(["spam", "timeout"], `${spam} is not below checks.timeout (${checks})${note}; expected an rspamd timeout shorter than the checks' deadline, so that a slow rspamd gives the verdict "spam.error" (checks.actions) instead of 451`);
}

/** DNSBL lookups fail open only if they end before the checks' deadline (which fails closed). */
function checkDnsblTimeout(values: ReadonlyMap<string, unknown>, fromFile: ReadonlySet<string>, ctx: CheckContext): void {
  const zones = values.get("dnsbl.zones") as readonly unknown[] | undefined;
  const dnsbl = values.get("dnsbl.timeout");
  const checks = values.get("checks.timeout");
  if (zones === undefined || zones.length === 0 || typeof dnsbl !== "number" || typeof checks !== "number" || dnsbl < checks) return;
  const note = fromFile.has("dnsbl.timeout") ? "" : " (a default value)";
  ctx.issue(["dnsbl", "timeout"], `${dnsbl} is not below checks.timeout (${checks})${note}; expected a DNSBL timeout shorter than the checks' deadline, so that a slow list lets the client in (fail open) instead of answering 451`);
}

/**
 * A clamd that is slow must get "virus.error" (its reply, its action)
 * before the checks' deadline answers a generic 451 4.7.0; checked when the
 * file sets antivirus.clamd or antivirus.timeout (with the defaults, a
 * checks.timeout at or under 15 only means the deadline answers first).
 */
function checkAntivirusTimeout(values: ReadonlyMap<string, unknown>, fromFile: ReadonlySet<string>, ctx: CheckContext): void {
  const av = values.get("antivirus.timeout");
  const checks = values.get("checks.timeout");
  if (values.get("antivirus.enabled") === false || typeof av !== "number" || typeof checks !== "number" || av < checks) return;
  if (!fromFile.has("antivirus.timeout") && !fromFile.has("antivirus.clamd")) return;
  const note = fromFile.has("antivirus.timeout") ? "" : " (a default value)";
  ctx.issue(["antivirus", "timeout"], `${av} is not below checks.timeout (${checks})${note}; expected a clamd timeout shorter than the checks' deadline, so that a slow clamd gets "virus.error" and its own action`);
}

/** ARC sealing needs its domain, selector and key together. */
function checkArcSeal(values: ReadonlyMap<string, unknown>, ctx: CheckContext): void {
  const keys = ["arc_seal_domain", "arc_seal_selector", "arc_seal_key"] as const;
  // A value that failed its own check (undefined) was reported already.
  if (keys.some((k) => !values.has(`checks.${k}`))) return;
  const set = keys.filter((k) => values.get(`checks.${k}`) !== "");
  if (set.length === 0 || set.length === 3) return;
  for (const k of keys) {
    if (!set.includes(k)) ctx.issue(["checks", k], `missing: ARC sealing needs checks.arc_seal_domain, checks.arc_seal_selector and checks.arc_seal_key together (${set.map((x) => `checks.${x}`).join(", ")} ${set.length === 1 ? "is" : "are"} set)`);
  }
}

function checkAccount(values: ReadonlyMap<string, unknown>, ctx: CheckContext): void {
  const user = values.get("server.user");
  const group = values.get("server.group");
  if (user === "" && typeof group === "string" && group !== "") {
    ctx.issue(["server", "group"], "group is set but server.user is empty; set server.user as well, or remove group");
  }
}

function checkLocal(values: ReadonlyMap<string, unknown>, fromFile: ReadonlySet<string>, ctx: CheckContext): void {
  const domains = values.get("local.domains") as readonly (string | undefined)[] | undefined;
  const mailboxes = values.get("local.mailboxes") as readonly (string | undefined)[] | undefined;
  const table = values.get("local.aliases") as AliasTable | undefined;
  const aliases = table?.entries ?? [];
  const boxes = new Set(mailboxes ?? []);
  const discard = values.get("local.discard") as readonly (string | undefined)[] | undefined;
  const drops = new Set(discard ?? []);
  const byAddress = new Map(aliases.map((a) => [a.address, a]));
  discard?.forEach((d, i) => {
    if (d !== undefined && (boxes.has(d) || byAddress.has(d))) {
      ctx.issue(["local", "discard", i], `${d} is also a mailbox or an alias; expected an address that is only discarded`);
    }
  });

  reportCycles(aliases, byAddress, ctx);
  for (const a of aliases) {
    if (boxes.has(a.address)) {
      ctx.issue(["local", "aliases", a.key], `${a.address} is both an alias and a mailbox (local.mailboxes); expected one or the other`);
    }
  }
  if (domains === undefined || domains.includes(undefined)) return;
  const local = new Set(domains);
  const domainList = domains.length === 0 ? "local.domains is empty" : `local.domains is ${domains.join(", ")}`;

  const hint = fromFile.has("local.mailboxes") ? "" : " (a default value: set local.mailboxes for your domains)";
  mailboxes?.forEach((m, i) => {
    if (m !== undefined && !local.has(domainOf(m))) {
      ctx.issue(["local", "mailboxes", i], `${m} is not in a local domain; expected its domain to be listed in local.domains (${domainList})${hint}`);
    }
  });
  const lmtp = values.get("local.lmtp") as LmtpTable | undefined;
  for (const e of lmtp?.entries ?? []) {
    if (!local.has(e.domain)) {
      ctx.issue(["local", "lmtp", e.key], `${e.domain} is not a local domain; expected a domain listed in local.domains (${domainList})`);
    }
  }
  discard?.forEach((d, i) => {
    if (d !== undefined && !local.has(domainOf(d))) {
      ctx.issue(["local", "discard", i], `${d} is not in a local domain; expected its domain to be listed in local.domains (${domainList})`);
    }
  });
  // Whether a local target exists can only be judged when every mailbox and alias is known.
  const allKnown = mailboxes !== undefined && !mailboxes.includes(undefined) && table?.complete === true && !(discard ?? []).includes(undefined);
  for (const a of aliases) {
    const at = ["local", "aliases", a.key];
    if (!local.has(domainOf(a.address))) {
      ctx.issue(at, `alias ${a.address} is not in a local domain; expected its domain to be listed in local.domains (${domainList})`);
    }
    if (!allKnown) continue;
    a.targets.forEach((t, i) => {
      if (t !== undefined && local.has(domainOf(t)) && !boxes.has(t) && !byAddress.has(t) && !drops.has(t)) {
        ctx.issue([...at, i], `target ${t} is in a local domain but is neither a mailbox (local.mailboxes), an alias nor discarded (local.discard)`);
      }
    });
  }
}

/** Depth-first search over alias → alias edges; each cycle is reported once, at its first alias in file order. */
function reportCycles(
  aliases: readonly AliasEntry[],
  byAddress: ReadonlyMap<string, AliasEntry>,
  ctx: CheckContext,
): void {
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (address: string): void => {
    state.set(address, "active");
    stack.push(address);
    for (const t of byAddress.get(address)?.targets ?? []) {
      if (t === undefined || !byAddress.has(t)) continue;
      const s = state.get(t);
      if (s === "active") {
        const cycle = [...stack.slice(stack.indexOf(t)), t];
        const first = aliases.find((a) => cycle.includes(a.address));
        if (first !== undefined) {
          const start = cycle.indexOf(first.address);
          const ordered = [...cycle.slice(start, -1), ...cycle.slice(0, start), first.address];
          ctx.issue(["local", "aliases", first.key], `alias cycle: ${ordered.join(" -> ")}; expected aliases to end at mailboxes or remote addresses`);
        }
      } else if (s === undefined) visit(t);
    }
    stack.pop();
    state.set(address, "done");
  };
  for (const a of aliases) if (!state.has(a.address)) visit(a.address);
}

const LISTENERS = ["smtp", "submission", "submissions"] as const;

function checkListeners(values: ReadonlyMap<string, unknown>, fromFile: ReadonlySet<string>, ctx: CheckContext): void {
  const seen: { section: string; index: number; addr: ListenAddress }[] = [];
  for (const section of LISTENERS) {
    const list = values.get(`${section}.listen`) as readonly (ListenAddress | undefined)[] | undefined;
    if (list === undefined) continue;
    list.forEach((addr, index) => {
      if (addr === undefined) return;
      const clash = seen.find((s) => listenOverlaps(s.addr, addr));
      seen.push({ section, index, addr });
      if (clash === undefined) return;
      // Report at the entry the operator wrote (the later one when both are written).
      const laterInFile = fromFile.has(`${section}.listen`) || !fromFile.has(`${clash.section}.listen`);
      const [here, other] = laterInFile
        ? [{ section, index, addr }, clash]
        : [clash, { section, index, addr }];
      const otherKey = `${other.section}.listen[${other.index}]`;
      const note = fromFile.has(`${other.section}.listen`) ? "" : " (a default value)";
      const same = here.addr.host === other.addr.host;
      const how = same ? "is also used by" : "collides with";
      const detail = same ? "" : ` (${formatListen(other.addr)}; a wildcard address covers every address of its family)`;
      ctx.issue(
        [here.section, "listen", here.index],
        `${formatListen(here.addr)} ${how} ${otherKey}${detail}${note}; expected each address:port to be bound by one listener only`,
      );
    });
  }
}
