/**
 * Config keys of the checks on mail (part of the one table in keys.ts): the
 * [checks], [dnsbl], [spam], [impersonation], [antivirus] and [attachments]
 * sections, in file order.
 */
import type { Field } from "./keys.ts";
import { describe, parseDomain } from "./syntax.ts";
import { VERDICT_DEFAULTS, arrayOf, boolean, checkActions, dmarcOverrides, integer, parsedString, stringElement, text } from "./checkers.ts";
import { dnsblZones } from "./dnsbl.ts";
import { rspamdUrl } from "./spam.ts";
import { attachmentOverrides, clamdTarget } from "./antivirus.ts";

export const CHECK_FIELDS: readonly Field[] = [
  {
    section: "checks", name: "enabled", type: "boolean", default: true,
    doc: "Verify inbound mail on the MX listener: SPF (MAIL FROM and HELO), DKIM, ARC and DMARC, the From: field (from.*) and the use of our own domains (local.*), and add Authentication-Results. Submission (authenticated) mail is not checked. false turns all of them off; relax single verdicts in checks.actions instead.",
    check: boolean,
  },
  {
    section: "checks", name: "authserv_id", type: "string", default: "",
    doc: "The authserv-id in our Authentication-Results headers. Empty: server.hostname. Incoming Authentication-Results headers that claim it are removed.",
    check: (v, path, ctx) => (v === "" ? "" : parsedString(parseDomain, "a domain name")(v, path, ctx)),
  },
  {
    section: "checks", name: "timeout", type: "integer (seconds)", default: 20, min: 1, max: 300,
    doc: "Deadline for each check. A check that fails or does not finish in time answers 451 4.7.0 (fail closed), never 'continue'.",
    check: integer(1, 300),
  },
  {
    section: "checks", name: "trusted_arc_sealers", type: "array of strings", default: [],
    doc: "Domains whose ARC seal (a passing chain, sealed last by this domain, whose ARC-Authentication-Results say dmarc=pass) overrides a DMARC failure: mailing lists and forwarders you trust.",
    check: arrayOf("domain names", stringElement(parseDomain, "a domain name"), (d) => d),
  },
  {
    section: "checks", name: "arc_seal_domain", type: "string", default: "",
    doc: "ARC-seal (RFC 8617) mail that an alias forwards to another domain, with this signing domain (d=). Empty: no sealing. Needs arc_seal_selector and arc_seal_key too.",
    check: (v, path, ctx) => (v === "" ? "" : parsedString(parseDomain, "a domain name")(v, path, ctx)),
  },
  {
    section: "checks", name: "arc_seal_selector", type: "string", default: "",
    doc: "Selector (s=) of the ARC sealing key: its public key is published at SELECTOR._domainkey.DOMAIN.",
    check: (v, path, ctx) => {
      if (v === "") return "";
      if (typeof v === "string" && /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(v)) return v.toLowerCase();
      ctx.issue(path, `expected a DKIM selector (labels of letters, digits and hyphens), got ${describe(v)}`);
      return undefined;
    },
  },
  {
    section: "checks", name: "arc_seal_key", type: "string (path)", default: "",
    doc: "PEM private key (RSA, at least 1024 bits; 2048 recommended) for ARC sealing, relative to the config file's directory.",
    check: (v, path, ctx) => {
      if (v === "") return "";
      const p = text("a file path", v, path, ctx);
      return p === undefined ? undefined : ctx.resolve(ctx.fileDir, p);
    },
  },
  {
    section: "checks", name: "actions", type: "table of strings", default: { ...VERDICT_DEFAULTS },
    doc: 'What to do with each verdict, "check.result" = action: "reject" (550 5.7.1 at the end of DATA), "tempfail" (451 4.7.1), "quarantine" (delivered to the Junk folder), "tag" (delivered with an X-Wardmail-Verdict header), "ignore" (only Authentication-Results). Keys you leave out keep their defaults.',
    check: checkActions,
  },
  {
    section: "checks", name: "dmarc_overrides", type: "table of strings", default: {},
    doc: '"domain" = "none" | "quarantine" | "reject": use this policy instead of the one the domain publishes when its DMARC check fails (matched on the From: domain, else the domain whose DMARC record applies, else the organizational domain).',
    check: dmarcOverrides,
  },
  {
    section: "dnsbl", name: "zones", type: "array of tables", default: [],
    doc: 'DNS lists asked about each client of the MX listener (not authenticated, not in relay.trusted_networks), each { zone = "bl.example.org", weight = 1, answers = [] }: weight is added to the client\'s score when the zone lists its address (negative for an allowlist, DNSWL), answers the 127.0.0.0/8 addresses or networks that count (empty: any). Error codes (127.0.0.1, 127.0.0.255, 127.255.255.0/24, anything outside 127.0.0.0/8) never count and are logged as errors. Empty: no lookups.',
    check: dnsblZones,
  },
  {
    section: "dnsbl", name: "threshold", type: "integer", default: 1, min: 1, max: 1000,
    doc: 'A client whose score (the summed weights of the zones listing it) reaches this gets the verdict "dnsbl.listed" (checks.actions; default reject: 550 5.7.1 at MAIL).',
    check: integer(1, 1000),
  },
  {
    section: "dnsbl", name: "timeout", type: "integer (seconds)", default: 5, min: 1, max: 60,
    doc: "Time for all lookups of one client. A lookup that fails or times out counts as not listed (fail open, logged). Must be below checks.timeout.",
    check: integer(1, 60),
  },
  {
    section: "spam", name: "rspamd", type: "string", default: "",
    doc: 'The rspamd normal worker that scores every message (MX and submission) over its HTTP protocol (/checkv2), e.g. "http://127.0.0.1:11333". Empty: no spam scanning. Its actions are the verdicts spam.reject, spam.soft_reject, spam.greylist, spam.add_header, spam.rewrite_subject; rspamd unreachable or failing is spam.error (default: accept and tag).',
    check: rspamdUrl,
  },
  {
    section: "spam", name: "timeout", type: "integer (seconds)", default: 10, min: 1, max: 120,
    doc: "Time rspamd has for one message; then the message gets the verdict spam.error. Must be below checks.timeout.",
    check: integer(1, 120),
  },
  {
    section: "spam", name: "max_size", type: "integer (bytes)", default: 20971520, min: 1024, max: 1073741824,
    doc: "Messages larger than this are not sent to rspamd (the score header says skipped); spam seldom comes that big.",
    check: integer(1024, 1073741824),
  },
  {
    section: "impersonation", name: "enabled", type: "boolean", default: true,
    doc: "Look at the From: of mail from outside (MX, not authenticated, not trusted): a domain that looks like one of local.domains (verdict impersonation.domain) or a display name that is a local account's (impersonation.name).",
    check: boolean,
  },
  {
    section: "impersonation", name: "external_tag", type: "boolean", default: false,
    doc: "Add an X-Wardmail-External header to every message that did not come from us (MX, not authenticated, not trusted), so mail clients and filters can mark it.",
    check: boolean,
  },
  {
    section: "antivirus", name: "enabled", type: "boolean", default: true,
    doc: 'Scan every message (MX, submission, trusted networks) with clamd before its 250. false: no scanning, even when a clamd is found. Verdicts (checks.actions): "virus.found" (default reject: 554 5.7.1 naming the signature), "virus.error" (clamd unreachable, timing out or failing; default tempfail: 451 4.7.1), "virus.too_large" (default tag).',
    check: boolean,
  },
  {
    section: "antivirus", name: "clamd", type: "string", default: "",
    doc: 'Where clamd listens: "IP:port" (its TCPSocket/TCPAddr) or the absolute path of its unix socket (LocalSocket). "": Wardmail looks for Debian\'s socket /run/clamav/clamd.ctl at startup and scans when it exists; the startup log says whether antivirus is on and where, or why it is off.',
    check: clamdTarget,
  },
  {
    section: "antivirus", name: "timeout", type: "integer (seconds)", default: 15, min: 1, max: 300,
    doc: 'Time to connect to clamd and scan one message; past it the message gets "virus.error" (default 451 4.7.1). Should be below checks.timeout, whose deadline otherwise answers 451 4.7.0 first.',
    check: integer(1, 300),
  },
  {
    section: "antivirus", name: "max_size", type: "integer (bytes)", default: 26214400, min: 1024, max: 536870912,
    doc: 'Largest message sent to clamd; set it to clamd\'s StreamMaxLength (Debian: 25M). A bigger message is not scanned and gets "virus.too_large" (default tag: delivered with X-Wardmail-Verdict: virus.too_large); clamd answering "INSTREAM size limit exceeded" gives the same verdict and a warning in the log.',
    check: integer(1024, 536870912),
  },
  {
    section: "attachments", name: "enabled", type: "boolean", default: true,
    doc: 'Look into every message\'s MIME parts and zip archives for executables (by content: PE, ELF, Mach-O, scripts; by name, double extensions, right-to-left-override names), disk images, macro-enabled Office files and encrypted archives. Verdicts (checks.actions, overridable per domain or mailbox in attachments.overrides): "attachment.executable", "attachment.disk_image", "attachment.macro" (default reject: 550 5.7.1 naming the part), "attachment.encrypted_archive", "attachment.unscannable" (default quarantine).',
    check: boolean,
  },
  {
    section: "attachments", name: "max_depth", type: "integer", default: 5, min: 1, max: 20,
    doc: 'Deepest nesting of archives (a zip in a zip) and attached messages looked into; anything deeper gets "attachment.unscannable".',
    check: integer(1, 20),
  },
  {
    section: "attachments", name: "max_archive_entries", type: "integer", default: 1000, min: 1, max: 100000,
    doc: 'Most archive entries looked at in one message; a message with more gets "attachment.unscannable".',
    check: integer(1, 100000),
  },
  {
    section: "attachments", name: "max_unpacked", type: "integer (bytes)", default: 67108864, min: 1024, max: 1073741824,
    doc: 'Most bytes decompressed from archives for one message (nested archives and the first bytes of each entry); a message needing more (a zip bomb) gets "attachment.unscannable".',
    check: integer(1024, 1073741824),
  },
  {
    section: "attachments", name: "overrides", type: "table of tables", default: {},
    doc: '[attachments.overrides."example.org"] or ."user@example.org": executable, disk_image, macro, encrypted_archive, unscannable = "reject" | "tempfail" | "quarantine" | "tag" | "ignore", instead of checks.actions for mail to that domain or mailbox (a mailbox entry wins over its domain\'s). With several recipients, the strictest action of theirs applies to the message.',
    check: attachmentOverrides,
  },
];
