/**
 * Maildir paths of local mailboxes: from the `maildir` template (%d domain,
 * %n local part, %% a percent sign), relative to dataDir unless absolute. A
 * substituted part that could leave its directory (`/`, `..`, NUL...) is
 * refused. The sink (src/sink) stores the path key (the filled template:
 * relative to dataDir unless absolute, so a data directory that moves takes
 * its Maildirs with it) with each recipient's route; the Maildir transport
 * resolves it against dataDir (maildirOf); the CLI prints paths for Dovecot.
 */
import { isAbsolute, normalize, resolve } from "node:path";

function safePart(value: string, what: string): string {
  if (value === "" || value === "." || value === ".." || /[/\\\0]/.test(value)) {
    throw new Error(`unsafe ${what} for a maildir path: ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

/** The template filled for a mailbox address: its Maildir relative to dataDir, or absolute. */
export function mailboxPathKey(template: string, mailbox: string): string {
  const at = mailbox.lastIndexOf("@");
  if (at <= 0) throw new Error(`mailbox address without local part or domain: ${JSON.stringify(mailbox.slice(0, 80))}`);
  const n = mailbox.slice(0, at);
  const d = mailbox.slice(at + 1);
  return normalize(template.replace(/%([dn%])/g, (_m, c: string) => (c === "d" ? safePart(d, "domain") : c === "n" ? safePart(n, "local part") : "%")));
}

/** A path key (mailboxPathKey) as a directory: absolute as it is, else under dataDir. */
export function maildirOf(dataDir: string, key: string): string {
  return isAbsolute(key) ? resolve(key) : resolve(dataDir, key);
}

/** The Maildir path of a mailbox address, from the template. */
export function mailboxPath(dataDir: string, template: string, mailbox: string): string {
  return maildirOf(dataDir, mailboxPathKey(template, mailbox));
}
