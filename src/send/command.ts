/**
 * `wardmail send`: composes a message (body from standard input, --attach
 * files), signs it and/or encrypts it (PGP/MIME, or S/MIME with --smime),
 * and submits it over TLS with SCRAM-SHA-256-PLUS where offered. See
 * SEND_HELP and docs/cli.md. Exit codes: 0 sent; 1 refused (a recipient key
 * is missing under --encrypt, or the server said no); 2 usage error;
 * 3 cannot (unreadable file or key, no terminal for a prompt, no
 * connection, TLS or certificate failure, protocol error). No terminal to
 * ask a password or passphrase on (and no file given) is a usage error (2),
 * as for `wardmail user add`.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import type * as openpgp from "openpgp";
import type { X509Certificate } from "node:crypto";
import { WireResolver } from "../dns/index.ts";
import { contentEntity, messageText, newMessageId, withHeaderProtection, type Attachment, type Entity, type Envelope } from "./compose.ts";
import { KeyError, certFor, readBounded, loadKeyring, pgpKeyFor, readPgpSecretKey, readSmimeIdentity, type Keyring, type SmimeIdentity } from "./keyring.ts";
import { encryptPgpMime, signPgpMime } from "./pgp.ts";
import { PromptError, askHidden, secretFromFile } from "./prompt.ts";
import { encryptSmime, signSmime } from "./smime.ts";
import { SubmitError, submit } from "./smtp.ts";
import { wkdLookup } from "./wkd.ts";

export const SEND_EXIT = { ok: 0, refused: 1, usage: 2, cannot: 3 } as const;

/** Largest body read from standard input, and largest sum of attachments. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
export const MAX_ATTACHMENTS_BYTES = 25 * 1024 * 1024;

export const SEND_HELP = `Usage: wardmail send --server HOST:PORT --from A --to B [--to C]... --subject S [options] < body.txt

Composes a message (the text on standard input, UTF-8; --attach files),
optionally signs and encrypts it, and submits it over TLS: implicit TLS on
port 465 (or --implicit-tls), else STARTTLS, never without TLS. The server
certificate is verified against HOST (or --tls-name) unless --insecure-tls.
AUTH uses SCRAM-SHA-256-PLUS (tls-exporter channel binding) where offered,
else SCRAM-SHA-256, else PLAIN. The message goes to every recipient or to
none. Header protection (RFC 9788): encrypted mail shows "[...]" as the
outer Subject; the real header fields travel inside.

Options:
  --server HOST:PORT      submission server (PORT defaults to 465)
  --from ADDR             sender (envelope and From:)
  --to ADDR               recipient (repeat for more)
  --subject TEXT          subject
  --attach FILE           attach a file (repeat for more; type from the name, else octet-stream)
  --sign                  sign (PGP/MIME multipart/signed, or S/MIME with --smime)
  --encrypt               encrypt to every recipient (and to the signer's own key with --sign);
                          refuses to send when a recipient's key is missing
  --smime                 S/MIME instead of OpenPGP
  --keyring DIR           recipients' keys: OpenPGP keys (.asc .gpg .pgp .key) and PEM
                          certificates (.pem .crt .cer); the key must carry the address
  --secret-key FILE       the signer's key: an OpenPGP secret key, or with --smime a PEM
                          file with the private key and its certificate (then any chain)
  --passphrase-file F     passphrase of the secret key (first line); else asked on the terminal
  --password-file F       login password (first line); else asked on the terminal
  --user NAME             login name (default: --from)
  --ca-file FILE          trust these CA certificates (PEM) for the server and WKD, not the system's
  --tls-name NAME         the name the server certificate must carry (default: HOST)
  --insecure-tls          do not verify the server certificate (TLS is still required)
  --implicit-tls          TLS from the first byte (default on port 465)
  --no-wkd                do not look OpenPGP keys up in the Web Key Directory
  --dns HOST:PORT         resolve names (server, WKD) through this DNS server instead of the system's
  --wkd-port PORT         HTTPS port for WKD (default 443; for tests)
  --timeout S             seconds for each connection step and each WKD lookup (default 30, 1-300)
Exit codes: 0 sent, 1 refused (a missing recipient key under --encrypt, or the
server refused AUTH, the sender, a recipient or the message), 2 usage error
(also: no terminal to ask a password on and no file), 3 cannot (unreadable
file or key, wrong passphrase, no connection, TLS or certificate failure).
`;

export interface SendIo {
  out(s: string): void;
  err(s: string): void;
  stdin?: NodeJS.ReadableStream;
}

class UsageError extends Error {}
class Refused extends Error {}

/** ASCII addresses only (no SMTPUTF8): local@domain, without the characters that would need quoting. */
const ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$/;

function parseHostPort(s: string, defaultPort: number | undefined, what: string): { host: string; port: number } {
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(s);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || port < 1 || port > 65535) throw new UsageError(`${what}: expected HOST:PORT, got '${s}'`);
  return { host: m[1] as string, port };
}

async function readStdin(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = typeof c === "string" ? Buffer.from(c) : (c);
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new KeyError(`the body on standard input is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(b);
  }
  const buf = Buffer.concat(chunks);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw new KeyError("the body on standard input is not UTF-8");
  }
}

type Resolve = (host: string) => Promise<string | undefined>;

function resolver(dns: string | undefined, timeoutMs: number): Resolve {
  if (dns === undefined) {
    return async (host) => {
      try {
        return (await lookup(host)).address;
      } catch {
        return undefined;
      }
    };
  }
  const server = parseHostPort(dns, 53, "--dns");
  const r = new WireResolver({ servers: [server], timeoutMs: Math.min(timeoutMs, 5000), attempts: 2, cacheSize: 0 });
  return async (host) => {
    for (const type of ["A", "AAAA"]) {
      try {
        const got = (await r.resolve(host, type)) as string[];
        if (got.length > 0) return got[0];
      } catch {
        // NXDOMAIN, no data, or no answer: try the next type
      }
    }
    return undefined;
  };
}

export async function sendCommand(args: string[], io: SendIo): Promise<number> {
  try {
    return await run(args, io);
  } catch (err) {
    if (err instanceof UsageError || (err instanceof Error && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      io.err(`wardmail send: ${err.message}\n`);
      return SEND_EXIT.usage;
    }
    if (err instanceof Refused) {
      io.err(`wardmail send: ${err.message}\n`);
      return SEND_EXIT.refused;
    }
    if (err instanceof SubmitError) {
      io.err(`wardmail send: ${err.message}\n`);
      return err.kind === "refused" ? SEND_EXIT.refused : SEND_EXIT.cannot;
    }
    if (err instanceof PromptError) {
      io.err(`wardmail send: ${err.message}\n`);
      return SEND_EXIT.usage;
    }
    if (err instanceof KeyError) {
      io.err(`wardmail send: ${err.message}\n`);
      return SEND_EXIT.cannot;
    }
    throw err;
  }
}

async function run(args: string[], io: SendIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      server: { type: "string" },
      from: { type: "string" },
      to: { type: "string", multiple: true },
      subject: { type: "string" },
      attach: { type: "string", multiple: true },
      sign: { type: "boolean" },
      encrypt: { type: "boolean" },
      smime: { type: "boolean" },
      keyring: { type: "string" },
      "secret-key": { type: "string" },
      "passphrase-file": { type: "string" },
      "password-file": { type: "string" },
      user: { type: "string" },
      "ca-file": { type: "string" },
      "tls-name": { type: "string" },
      "insecure-tls": { type: "boolean" },
      "implicit-tls": { type: "boolean" },
      "no-wkd": { type: "boolean" },
      dns: { type: "string" },
      "wkd-port": { type: "string" },
      timeout: { type: "string" },
    },
  });
  if (values.help) {
    io.out(SEND_HELP);
    return SEND_EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (the body is read from standard input)`);
  if (values.server === undefined) throw new UsageError("--server HOST:PORT is required");
  const server = parseHostPort(values.server, 465, "--server");
  const from = values.from;
  const to = values.to ?? [];
  if (from === undefined || !ADDRESS.test(from)) throw new UsageError("--from ADDRESS is required (local@domain)");
  if (to.length === 0) throw new UsageError("at least one --to ADDRESS is required");
  for (const a of to) if (!ADDRESS.test(a)) throw new UsageError(`--to: '${a}' is not an address (local@domain)`);
  if (values.subject === undefined) throw new UsageError("--subject TEXT is required");
  if (/[\r\n\0]/.test(values.subject)) throw new UsageError("--subject must be one line");
  const sign = values.sign === true;
  const encrypt = values.encrypt === true;
  const smime = values.smime === true;
  if (smime && !sign && !encrypt) throw new UsageError("--smime needs --sign or --encrypt");
  if (sign && values["secret-key"] === undefined) throw new UsageError("--sign needs --secret-key FILE");
  const timeoutS = values.timeout === undefined ? 30 : Number(values.timeout);
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 300) throw new UsageError("--timeout: expected whole seconds 1-300");
  const wkdPort = values["wkd-port"] === undefined ? 443 : Number(values["wkd-port"]);
  if (!Number.isInteger(wkdPort) || wkdPort < 1 || wkdPort > 65535) throw new UsageError("--wkd-port: expected a port 1-65535");
  const timeoutMs = timeoutS * 1000;
  const resolve = resolver(values.dns, timeoutMs);
  const ca = values["ca-file"] !== undefined ? await readBounded(values["ca-file"], "CA file") : undefined;

  // Everything that can fail locally is done before connecting.
  const stdin = io.stdin ?? process.stdin;
  if ((stdin as { isTTY?: boolean }).isTTY === true) io.err("wardmail send: type the message, then Ctrl-D on a line of its own\n");
  const text = await readStdin(stdin);
  const attachments: Attachment[] = [];
  let total = 0;
  for (const file of values.attach ?? []) {
    const content = await readBounded(file, "attachment", MAX_ATTACHMENTS_BYTES);
    total += content.length;
    if (total > MAX_ATTACHMENTS_BYTES) throw new KeyError(`attachments exceed ${MAX_ATTACHMENTS_BYTES} bytes in all`);
    attachments.push({ filename: file, content });
  }
  const keyring: Keyring = values.keyring !== undefined ? await loadKeyring(values.keyring) : { pgp: [], certs: [], skipped: [] };
  for (const s of keyring.skipped) io.err(`wardmail send: skipped ${s}\n`);

  let passphrase: string | undefined;
  const getPassphrase = async (): Promise<string> => {
    passphrase ??= values["passphrase-file"] !== undefined ? await secretFromFile(values["passphrase-file"], "passphrase file") : await askHidden("Passphrase for the secret key: ");
    return passphrase;
  };
  let pgpSigner: openpgp.PrivateKey | undefined;
  let smimeSigner: SmimeIdentity | undefined;
  if (sign) {
    const file = values["secret-key"] as string;
    if (smime) smimeSigner = await readSmimeIdentity(file, getPassphrase);
    else pgpSigner = await readPgpSecretKey(file, getPassphrase);
  }

  const pgpKeys: openpgp.PublicKey[] = [];
  const certs: X509Certificate[] = [];
  if (encrypt) {
    const missing: string[] = [];
    for (const rcpt of to) {
      if (smime) {
        const f = certFor(keyring.certs, rcpt);
        if (f.ok) certs.push(f.key);
        else missing.push(`${rcpt}: ${f.reason}`);
        continue;
      }
      let f = await pgpKeyFor(keyring.pgp, rcpt);
      if (!f.ok && values["no-wkd"] !== true) {
        const w = await wkdLookup(rcpt, { resolve, port: wkdPort, timeoutMs, ...(ca !== undefined ? { ca } : {}) });
        f = w.ok ? w : { ok: false, reason: `${f.reason}; ${w.reason}` };
        if (w.ok) io.err(`wardmail send: key for ${rcpt} from its Web Key Directory: ${w.key.getFingerprint().toUpperCase()}\n`);
      }
      if (f.ok) pgpKeys.push(f.key);
      else missing.push(`${rcpt}: ${f.reason}`);
    }
    if (missing.length > 0) throw new Refused(`--encrypt: no usable key for ${missing.length === 1 ? "a recipient" : `${missing.length} recipients`}; nothing was sent\n  ${missing.join("\n  ")}`);
    if (pgpSigner !== undefined) pgpKeys.push(pgpSigner.toPublic());
    if (smimeSigner !== undefined) certs.push(smimeSigner.cert);
  }

  const env: Envelope = { from, to, subject: values.subject, date: new Date(), messageId: newMessageId(from) };
  const content = contentEntity(text, attachments);
  const hidden = "[...]";
  let top: Entity = content;
  if (encrypt) {
    let inner = withHeaderProtection(content, "cipher", env, hidden);
    if (smime) {
      if (smimeSigner !== undefined) inner = await signSmime(inner, smimeSigner);
      top = await encryptSmime(inner, certs);
    } else top = await encryptPgpMime(inner, pgpKeys, pgpSigner);
  } else if (sign) {
    const inner = withHeaderProtection(content, "clear", env);
    top = smimeSigner !== undefined ? await signSmime(inner, smimeSigner) : await signPgpMime(inner, pgpSigner as openpgp.PrivateKey);
  }
  const message = Buffer.from(messageText(env, top, encrypt ? hidden : undefined), "utf8");

  const user = values.user ?? from;
  const password = values["password-file"] !== undefined ? await secretFromFile(values["password-file"], "password file") : await askHidden(`Password for ${user}: `);
  const address = isIP(server.host) !== 0 ? server.host : await resolve(server.host);
  if (address === undefined) throw new SubmitError("cannot", `cannot resolve ${server.host}`);
  const result = await submit({
    address,
    port: server.port,
    tlsName: values["tls-name"] ?? server.host,
    implicitTls: values["implicit-tls"] === true || server.port === 465,
    insecureTls: values["insecure-tls"] === true,
    ...(ca !== undefined ? { ca } : {}),
    user,
    password,
    from,
    to,
    message,
    timeoutMs,
    trace: (l) => io.err(`wardmail send: ${l}\n`),
  });
  const what = [sign ? "signed" : "", encrypt ? "encrypted" : ""].filter((s) => s !== "").join(" and ");
  io.out(`sent${what !== "" ? ` (${what}, ${smime ? "S/MIME" : "PGP/MIME"})` : ""} to ${to.join(", ")} over ${result.tlsVersion} with ${result.mechanism}: ${result.reply}\n`);
  return SEND_EXIT.ok;
}
