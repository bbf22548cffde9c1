/**
 * `wardmail dkim keygen|list`: the DKIM keys that sign outgoing mail
 * (src/dkim). keygen makes a key set (RSA-2048 + Ed25519) for a domain and
 * prints its two TXT records in zone-file form; list shows what is on disk.
 * Keys live under <data_dir>/dkim/<domain>/ (files 0600, directories 0700);
 * as root with server.user set, what keygen creates is given to that user
 * so the server can read it after dropping privileges.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../config/index.ts";
import { chownTo } from "../server/index.ts";
import { DkimKeyError, dkimDir, dkimRecords, generateDomainKeys, inspectKeys, normalizeDomain, normalizeSelector, txtLine, type DomainKeySet } from "../dkim/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";

const EXIT_CODES = `Exit codes: 0 done, 1 answer is no (keys exist already, refused domain or selector,
unusable key files), 2 usage error, 3 cannot read the config or read/write the key directory.
`;

export const DKIM_HELP = `Usage: wardmail dkim <action> [options] [--config FILE]

Keys that sign outgoing mail with DKIM. A key set is an RSA-2048 and an
Ed25519 key under one base selector S, published as S-rsa._domainkey.DOMAIN
and S-ed25519._domainkey.DOMAIN (RFC 8463: two algorithms, two selectors).
Keys are kept in <data_dir>/dkim/DOMAIN/S.rsa.pem and S.ed25519.pem.
Mail is signed when its From: domain is exactly a domain with keys; every
key set of that domain signs (so old and new sign side by side during a
rotation: remove the old files once the new records are published).

Actions:
  keygen --domain D [--selector S] [--force]
                    create a key set for D and print its two DNS records
  list [--json]     every key set: domain, selector, key types, when created

Options:
  --config FILE     config whose data directory to use (default: embedded defaults)
${EXIT_CODES}`;

const KEYGEN_HELP = `Usage: wardmail dkim keygen --domain D [--selector S] [--force] [--config FILE]

Creates an RSA-2048 and an Ed25519 key for domain D and prints the two TXT
records to publish, in zone-file syntax (long values split into strings of
at most 255 bytes). D is any domain you send mail for (letters, digits,
hyphens; at least two labels). S defaults to "wm" + this year and month
(e.g. wm202611); the records are S-rsa._domainkey.D and
S-ed25519._domainkey.D. Existing keys for S are kept unless --force (which
replaces them: publish the new records, the old ones stop verifying).
\`wardmail domain dns D\` prints these records again with D's other records.

Options:
  --domain D        the signing domain (d=)
  --selector S      base selector: lowercase letters, digits, inner hyphens, at most 55
  --force           replace existing keys for S
  --config FILE     config whose data directory to use (default: embedded defaults)
${EXIT_CODES}`;

const LIST_HELP = `Usage: wardmail dkim list [--json] [--config FILE]

Prints every usable key set, one a line: domain, base selector, key types
and DNS selectors, when created (newest first within a domain). Key files
that cannot be used (missing partner, unreadable, wrong key type) are named
on stderr, and the exit code is then 1. --json prints an array of
{ domain, selector, created, keys: [{ type, bits?, selector, name, value }] }
with the TXT record names and values.

Options:
  --json            machine-readable output
  --config FILE     config whose data directory to use (default: embedded defaults)
${EXIT_CODES}`;

export async function dkimCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      domain: { type: "string", short: "d" },
      selector: { type: "string", short: "s" },
      force: { type: "boolean" },
      json: { type: "boolean" },
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [action, ...extra] = positionals;
  const help = action === "keygen" ? KEYGEN_HELP : action === "list" ? LIST_HELP : DKIM_HELP;
  if (values.help) {
    io.out(help);
    return 0;
  }
  if (action === undefined || (action !== "keygen" && action !== "list")) {
    io.err(`wardmail dkim: ${action === undefined ? "missing action" : `unknown action '${action}'`}\n\n${DKIM_HELP}`);
    return 2;
  }
  if (extra.length > 0) return usage(io, action, `unexpected argument '${extra[0] ?? ""}'`, help);
  if (action === "keygen") {
    if (values.domain === undefined) return usage(io, action, "--domain is required", help);
    if (values.json) return usage(io, action, "--json is for list only", help);
  } else if (values.domain !== undefined || values.selector !== undefined || values.force) {
    return usage(io, action, "--domain, --selector and --force are for keygen only", help);
  }

  const config = await loadCommandConfig(values.config, io);
  if (config === undefined) return 3;
  return action === "keygen"
    ? keygen(config, io, values.domain as string, values.selector, values.force === true)
    : list(config, io, values.json === true);
}

function usage(io: Io, action: string, message: string, help: string): number {
  io.err(`wardmail dkim ${action}: ${message}\n\n${help}`);
  return 2;
}

async function keygen(config: Config, io: Io, domainArg: string, selectorArg: string | undefined, force: boolean): Promise<number> {
  const domain = normalizeDomain(domainArg);
  if (domain === undefined) {
    io.err(`wardmail dkim keygen: not a domain name: ${JSON.stringify(domainArg.slice(0, 100))}\n`);
    return 1;
  }
  if (selectorArg !== undefined && normalizeSelector(selectorArg) === undefined) {
    io.err(`wardmail dkim keygen: not a selector: ${JSON.stringify(selectorArg.slice(0, 100))} (lowercase letters, digits and inner hyphens, at most 55)\n`);
    return 1;
  }
  const dataDir = config.server.dataDir;
  let made;
  try {
    made = await generateDomainKeys(dataDir, domain, { ...(selectorArg !== undefined ? { selector: selectorArg } : {}), force });
  } catch (err) {
    if (err instanceof DkimKeyError) {
      const hint = err.code === "EXISTS" ? " (give --selector for a new key set, or --force to replace these keys)" : "";
      io.err(`wardmail dkim keygen: ${err.message}${hint}\n`);
      return 1;
    }
    io.err(`wardmail dkim keygen: cannot write the keys: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  try {
    await chownTo(config, made.createdDirs[0] ?? join(dkimDir(dataDir), domain));
  } catch (err) {
    io.err(`wardmail dkim keygen: cannot give the keys to user ${config.server.user}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  io.out(`; DKIM keys of ${domain}, selector ${made.selector}: publish both records\n`);
  for (const r of made.records) io.out(`${txtLine(r.name, r.value)}\n`);
  io.err(`wrote ${made.files.rsa} and ${made.files.ed25519}\n`);
  return 0;
}

function jsonSet(s: DomainKeySet): unknown {
  return {
    domain: s.domain,
    selector: s.selector,
    created: s.created.toISOString(),
    keys: dkimRecords(s).map((r) => ({ type: r.type, ...(r.type === "rsa" ? { bits: s.rsaBits } : {}), selector: r.selector, name: r.name, value: r.value })),
  };
}

async function list(config: Config, io: Io, json: boolean): Promise<number> {
  let inventory;
  try {
    inventory = await inspectKeys(config.server.dataDir);
  } catch (err) {
    io.err(`wardmail dkim list: cannot read ${dkimDir(config.server.dataDir)}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  const { sets, problems } = inventory;
  if (json) io.out(`${JSON.stringify(sets.map(jsonSet))}\n`);
  else if (sets.length === 0) io.out("no DKIM keys (create some with: wardmail dkim keygen --domain DOMAIN)\n");
  else {
    const width = Math.max(...sets.map((s) => s.domain.length));
    const selWidth = Math.max(...sets.map((s) => s.selector.length));
    for (const s of sets) {
      io.out(
        `${s.domain.padEnd(width)}  ${s.selector.padEnd(selWidth)}  rsa-${s.rsaBits} (${s.selectorRsa}) + ed25519 (${s.selectorEd})  created ${s.created.toISOString()}\n`,
      );
    }
    io.out(`${sets.length} key set${sets.length === 1 ? "" : "s"}\n`);
  }
  for (const p of problems) io.err(`wardmail dkim list: ${p}\n`);
  return problems.length > 0 ? 1 : 0;
}
