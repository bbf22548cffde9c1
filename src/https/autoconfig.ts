/**
 * Mail-client autoconfiguration documents: Thunderbird's autoconfig
 * (config-v1.1.xml) and Microsoft's Autodiscover (POX, the 2006a Outlook
 * response schema). Both announce the IMAP server (Dovecot, https.imap_*)
 * and our submission listeners: 465 implicit TLS and 587 STARTTLS (the
 * ports configured on submissions.listen and submission.listen). Logins are
 * the full address with a cleartext password inside TLS.
 */

export interface ClientServer {
  readonly host: string;
  readonly port: number;
  /** "SSL": TLS from the first byte; "STARTTLS": upgraded. */
  readonly socketType: "SSL" | "STARTTLS";
}

export interface MailSettings {
  readonly imap: ClientServer;
  /** Implicit TLS first (preferred, RFC 8314), then STARTTLS. */
  readonly smtp: readonly ClientServer[];
}

/** Escapes text for XML character data and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c] ?? c);
}

function server(tag: "incomingServer" | "outgoingServer", type: string, s: ClientServer): string[] {
  return [
    `    <${tag} type="${type}">`,
    `      <hostname>${xmlEscape(s.host)}</hostname>`,
    `      <port>${s.port}</port>`,
    `      <socketType>${s.socketType}</socketType>`,
    "      <authentication>password-cleartext</authentication>",
    "      <username>%EMAILADDRESS%</username>",
    `    </${tag}>`,
  ];
}

/** Thunderbird's config-v1.1.xml for a domain. */
export function autoconfigXml(domain: string, settings: MailSettings): string {
  const d = xmlEscape(domain);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="${d}">`,
    `    <domain>${d}</domain>`,
    `    <displayName>${d}</displayName>`,
    `    <displayShortName>${d}</displayShortName>`,
    ...server("incomingServer", "imap", settings.imap),
    ...settings.smtp.flatMap((s) => server("outgoingServer", "smtp", s)),
    "  </emailProvider>",
    "</clientConfig>",
    "",
  ].join("\n");
}

function protocol(type: "IMAP" | "SMTP", s: ClientServer, login: string): string[] {
  return [
    "      <Protocol>",
    `        <Type>${type}</Type>`,
    `        <Server>${xmlEscape(s.host)}</Server>`,
    `        <Port>${s.port}</Port>`,
    "        <DomainRequired>off</DomainRequired>",
    `        <LoginName>${xmlEscape(login)}</LoginName>`,
    "        <SPA>off</SPA>",
    s.socketType === "SSL" ? "        <SSL>on</SSL>" : "        <Encryption>TLS</Encryption>",
    "        <AuthRequired>on</AuthRequired>",
    "      </Protocol>",
  ];
}

/** The Autodiscover answer for an address of a local domain. */
export function autodiscoverXml(address: string, settings: MailSettings): string {
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">',
    '  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">',
    "    <Account>",
    "      <AccountType>email</AccountType>",
    "      <Action>settings</Action>",
    ...protocol("IMAP", settings.imap, address),
    ...settings.smtp.flatMap((s) => protocol("SMTP", s, address)),
    "    </Account>",
    "  </Response>",
    "</Autodiscover>",
    "",
  ].join("\n");
}

/** A plain address local@domain (ASCII, no quoting), lower-cased domain; undefined otherwise. */
export function plainAddress(s: string): { local: string; domain: string } | undefined {
  const m = /^([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@([A-Za-z0-9.-]{1,253})$/.exec(s.trim());
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  return { local: m[1], domain: m[2].toLowerCase().replace(/\.$/, "") };
}

/**
 * The EMailAddress of an Autodiscover request body (already bounded in
 * size by the caller). A single linear scan: no XML parser for hostile input.
 */
export function autodiscoverAddress(body: string): string | undefined {
  const m = /<EMailAddress>([^<]{1,320})<\/EMailAddress>/.exec(body);
  return m?.[1]?.trim();
}
