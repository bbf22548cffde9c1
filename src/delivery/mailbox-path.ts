/**
 * Maildir paths of local mailboxes: from the `maildir` template (%d domain,
 * %n local part, %% a percent sign), relative to dataDir unless absolute. A
 * substituted part that could leave its directory (`/`, `..`, NUL...) is
 * refused. The sink (src/sink) stores the path with each recipient's route;
 * the CLI prints it for Dovecot.
 */
import { isAbsolute, resolve } from "node:path";

function safePart(value: string, what: string): string {
  if (value === "" || value === "." || value === ".." || /[/\\\0]/.test(value)) {
    throw new Error(`unsafe ${what} for a maildir path: ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

/** The Maildir path of a mailbox address, from the template. */
export function mailboxPath(dataDir: string, template: string, mailbox: string): string {
  const at = mailbox.lastIndexOf("@");
  if (at <= 0) throw new Error(`mailbox address without local part or domain: ${JSON.stringify(mailbox.slice(0, 80))}`);
  const n = mailbox.slice(0, at);
  const d = mailbox.slice(at + 1);
  const path = template.replace(/%([dn%])/g, (_m, c: string) => (c === "d" ? safePart(d, "domain") : c === "n" ? safePart(n, "local part") : "%"));
  return isAbsolute(path) ? resolve(path) : resolve(dataDir, path);
}
