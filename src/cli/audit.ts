/**
 * `wardmail audit server HOST[:PORT]`: grades any SMTP server (see
 * docs/audit.md). Exit codes: 0 no high or critical finding, 1 at least one,
 * 2 usage error, 3 the target is unreachable (no connection or no 220).
 */
import { lookup } from "node:dns/promises";
import { writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { auditServer, isSerious, toHtml, toJson, toText, UnreachableError } from "../audit/index.ts";
import type { Io } from "./main.ts";

export const AUDIT_HELP = `Usage: wardmail audit server HOST[:PORT] [options]

Grades an SMTP server (any software, not only Wardmail) against the holes of
plain SMTP: STARTTLS and TLS (versions, suites, certificate, session tickets
on port 25, post-quantum key exchange), STARTTLS plaintext injection, a
transaction before EHLO, open relay (with the %, !, quoted, source-route and
IP-literal tricks), AUTH before TLS, VRFY/EXPN, the banner, SIZE,
REQUIRETLS, SMTPUTF8, and with --send-to SMTP smuggling. Polite: one
connection at a time, every probe ends with RSET/QUIT, DATA is never sent
except with --send-to, to that address only. HOST is a name or an IP
address ([IPv6]:PORT); PORT defaults to 25 (587 with --submission; 465 means
implicit TLS).

Options:
  --submission      audit a submission port (465/587): AUTH and TLS are graded as for mail clients
  --implicit-tls    TLS from the first byte (the default on port 465)
  --send-to ADDR    run the smuggling check, delivering its test messages to ADDR (an address you control)
  --from ADDR       envelope sender of the probes (default <> for relay probes, ADDR of --send-to for smuggling)
  --helo NAME       our EHLO name (default wardmail-audit.invalid)
  --timeout S       seconds to wait for each reply, connect and handshake (default 10, 1-120)
  --json            print the report as JSON (schema in docs/audit.md)
  --html FILE       also write the report as a self-contained HTML page to FILE
Exit codes: 0 no high or critical finding, 1 at least one, 2 usage error, 3 target unreachable.
`;

/** HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; undefined when malformed. */
export function parseTarget(s: string, defaultPort: number): { host: string; port: number } | undefined {
  let host = s;
  let port = defaultPort;
  const bracket = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracket !== null) {
    host = bracket[1] as string;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
    if (isIP(host) !== 6) return undefined;
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
    if (m === null) return undefined;
    host = m[1] as string;
    if (m[2] !== undefined) port = Number(m[2]);
    if (isIP(host) === 0 && !/^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*\.?$/i.test(host)) return undefined;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}

const ADDRESS_RE = /^[^\s<>@"]{1,64}@[a-z0-9.-]{1,253}$/i;

export async function auditCommand(args: string[], io: Io, env: { isTty: boolean; stderrTty: boolean; noColor: boolean } = ttyEnv()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      submission: { type: "boolean" },
      "implicit-tls": { type: "boolean" },
      "send-to": { type: "string" },
      from: { type: "string" },
      helo: { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean" },
      html: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.out(AUDIT_HELP);
    return 0;
  }
  const [kind, targetArg, ...extra] = positionals;
  if (kind === "domain") {
    io.err("wardmail audit domain: not built yet (issue 15, second part); audit each MX with `wardmail audit server HOST`\n");
    return 2;
  }
  if (kind !== "server" || targetArg === undefined || extra.length > 0) {
    io.err(`wardmail audit: expected \`server HOST[:PORT]\`\n\n${AUDIT_HELP}`);
    return 2;
  }
  const submission = values.submission === true;
  const t = parseTarget(targetArg, submission ? 587 : 25);
  if (t === undefined) {
    io.err(`wardmail audit: not a HOST[:PORT]: ${JSON.stringify(targetArg.slice(0, 100))}\n`);
    return 2;
  }
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 1 || timeout > 120) {
    io.err("wardmail audit: --timeout takes seconds from 1 to 120\n");
    return 2;
  }
  for (const [name, v] of [["--send-to", values["send-to"]], ["--from", values.from]] as const) {
    if (v !== undefined && !ADDRESS_RE.test(v)) {
      io.err(`wardmail audit: ${name} takes an address local@domain: ${JSON.stringify(v.slice(0, 100))}\n`);
      return 2;
    }
  }
  if (values.helo !== undefined && !/^[a-z0-9.-]{1,253}$/i.test(values.helo)) {
    io.err("wardmail audit: --helo takes a host name\n");
    return 2;
  }
  let address = t.host;
  if (isIP(t.host) === 0) {
    try {
      address = (await lookup(t.host)).address;
    } catch (e) {
      io.err(`wardmail audit: cannot resolve ${t.host}: ${e instanceof Error ? e.message : String(e)}\n`);
      return 3;
    }
  }
  const progress = env.stderrTty ? (what: string): void => io.err(`\r\x1b[2K... ${what}`) : (): void => undefined;
  let report;
  try {
    report = await auditServer({
      host: t.host,
      address,
      port: t.port,
      submission,
      ...(values["implicit-tls"] === true ? { implicitTls: true } : {}),
      timeoutMs: timeout * 1000,
      ...(values.helo !== undefined ? { helo: values.helo } : {}),
      ...(values.from !== undefined ? { from: values.from } : {}),
      ...(values["send-to"] !== undefined ? { sendTo: values["send-to"] } : {}),
      progress,
    });
  } catch (e) {
    if (env.stderrTty) io.err("\r\x1b[2K");
    if (e instanceof UnreachableError) {
      io.err(`wardmail audit: unreachable: ${e.message}\n`);
      return 3;
    }
    throw e;
  }
  if (env.stderrTty) io.err("\r\x1b[2K");
  io.out(values.json === true ? toJson(report) : toText(report, { colour: env.isTty && !env.noColor }));
  if (values.html !== undefined) {
    try {
      await writeFile(values.html, toHtml(report));
    } catch (e) {
      io.err(`wardmail audit: cannot write ${values.html}: ${e instanceof Error ? e.message : String(e)}\n`);
      return 3;
    }
  }
  return report.findings.some(isSerious) ? 1 : 0;
}

function ttyEnv(): { isTty: boolean; stderrTty: boolean; noColor: boolean } {
  return { isTty: process.stdout.isTTY === true, stderrTty: process.stderr.isTTY === true, noColor: (process.env.NO_COLOR ?? "") !== "" };
}
