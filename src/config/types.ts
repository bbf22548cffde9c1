/**
 * The validated, frozen configuration every part of Wardmail reads.
 * Produced by the loader in this folder from the embedded defaults merged with
 * the operator's TOML file. Paths here are already absolute.
 */
import type { Limits } from "../limits/index.ts";
import type { BareLineEndingPolicy, EightBitPolicy } from "../protocol/index.ts";
export type { BareLineEndingPolicy, EightBitPolicy };

/** "host:port" parsed; host is an IP literal (v4 or v6 without brackets). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface CertificatePair {
  /** Absolute path of a PEM certificate chain. */
  readonly cert: string;
  /** Absolute path of a PEM private key. */
  readonly key: string;
}

/** Outbound TLS for a destination: DANE required; PKIX-verified TLS; TLS without verification; opportunistic. */
export type TlsPolicy = "dane-only" | "verify" | "encrypt" | "may";

export interface RelayHost {
  /** Destination domains (lowercase) or ["*"]. */
  readonly domains: readonly string[];
  readonly host: string;
  readonly port: number;
  /** "required": TLS with the certificate verified for `host`; "encrypt": TLS, certificate not checked; "may": opportunistic. */
  readonly tls: "required" | "encrypt" | "may";
  /** Absolute path of a PEM file of CAs trusted for this relay instead of the system's; "" for the system's. */
  readonly caFile: string;
  /** AUTH PLAIN user; "" for none (a user needs tls "required"). */
  readonly user: string;
  /** Absolute path of a file holding the password; "" for none. */
  readonly passwordFile: string;
}

/** Where a local domain's mail is delivered over LMTP: a TCP address (IP literal) or a unix socket (absolute path). */
export type LmtpTarget = { readonly host: string; readonly port: number } | { readonly path: string };

/** One DNS list asked about each client address (config [dnsbl] zones). */
export interface DnsblZone {
  /** The list's zone (lowercase), e.g. "zen.spamhaus.org". */
  readonly zone: string;
  /** Added to the client's score when listed; negative for an allowlist (DNSWL). */
  readonly weight: number;
  /** "127.x.y.z/prefix" networks of the answers that count; empty: any answer that is not an error code. */
  readonly answers: readonly string[];
}

/** Where clamd listens: a TCP address (IP literal) or a unix socket (absolute path). */
export type ClamdTarget = { readonly host: string; readonly port: number } | { readonly path: string };

export type CheckAction = "reject" | "tempfail" | "quarantine" | "tag" | "ignore";

export interface Config {
  readonly server: {
    /** Name used in the greeting, EHLO reply and Received headers. */
    readonly hostname: string;
    /** Root of all state: spool, mail, tls. $WARDMAIL_HOME or ./var by default. */
    readonly dataDir: string;
    /** Worker threads; 0 means one per CPU core. */
    readonly workers: number;
    /** When started as root: user and group to run as after binding. Empty: stay. */
    readonly user: string;
    readonly group: string;
  };
  /** MX (port 25 role): plain, STARTTLS offered. */
  readonly smtp: { readonly listen: readonly ListenAddress[] };
  /** Submission with STARTTLS (port 587 role). */
  readonly submission: { readonly listen: readonly ListenAddress[] };
  /** Submission with implicit TLS (port 465 role, RFC 8314). */
  readonly submissions: { readonly listen: readonly ListenAddress[] };
  readonly tls: {
    /** Operator certificates. Empty: a self-signed one is generated once in dataDir/tls and reused. */
    readonly certificates: readonly CertificatePair[];
    readonly minVersion: "TLSv1.2" | "TLSv1.3";
    /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults). */
    readonly ciphers: string;
    /** OpenSSL group list for key exchange (never "DEFAULT"). */
    readonly groups: string;
    /** Issue session tickets on the MX listener (off: none on TLS 1.3, an empty one on TLS 1.2). */
    readonly mxSessionTickets: boolean;
    /** Watch certificate files and reload on change (SIGHUP always reloads). */
    readonly watch: boolean;
  };
  readonly limits: Limits;
  readonly protocol: {
    /** Bare CR or LF in a command or in message content. */
    readonly bareLineEndings: BareLineEndingPolicy;
    /** 8-bit bytes in DATA when MAIL FROM did not say BODY=8BITMIME. */
    readonly eightBitWithout8bitmime: EightBitPolicy;
    /** Refuse commands sent before the reply to EHLO/HELO, and content before the 354 to DATA. */
    readonly strictPipelining: boolean;
  };
  readonly spool: {
    /** Most messages one group commit may hold. */
    readonly maxBatch: number;
    /** Encrypt new spool records at rest (AES-256-GCM, key in <data_dir>/spool.keys). */
    readonly encrypt: boolean;
  };
  readonly local: {
    /** Domains this server is the final destination for (lowercase, no trailing dot). */
    readonly domains: readonly string[];
    /** Full addresses with a mailbox here (lowercase). */
    readonly mailboxes: readonly string[];
    /** Alias address → target addresses (lowercase). Targets may be aliases or mailboxes. */
    readonly aliases: Readonly<Record<string, readonly string[]>>;
    /**
     * Addresses whose mail is accepted (durably, like any other) and then
     * dropped at delivery, like Postfix's discard transport: no-reply
     * addresses, sinks. Lowercase, in local domains.
     */
    readonly discard: readonly string[];
    /** Maildir path template relative to dataDir (or absolute); %d domain, %n local part. */
    readonly maildir: string;
    /** Local domain → LMTP server its mailboxes are delivered to instead of their Maildirs. */
    readonly lmtp: Readonly<Record<string, LmtpTarget>>;
  };
  readonly auth: {
    readonly mechanisms: readonly string[];
    /** Offer AUTH on the MX listener too (after STARTTLS). */
    readonly onMx: boolean;
    /** Milliseconds before a failed AUTH's reply; doubles per further attempt of the client or the name. */
    readonly failureDelay: number;
    readonly maxFailureDelay: number;
    readonly ipMaxFailures: number;
    /** Seconds. */
    readonly ipWindow: number;
    readonly ipBlock: number;
    readonly accountMaxFailures: number;
    readonly accountWindow: number;
    readonly accountLock: number;
    /** Seconds a successful login keeps its client exempt from the account's lock; 0: no exemption. */
    readonly knownNetworkWindow: number;
  };
  readonly relay: {
    /** "address/prefix" networks that may relay without AUTH. */
    readonly trustedNetworks: readonly string[];
  };
  readonly accounts: {
    readonly maxMessagesPerHour: number;
    readonly maxRecipientsPerHour: number;
  };
  /** Compromised-account hold (src/spam/hold.ts), keys accounts.hold_*. */
  readonly accountHold: {
    /** 0 turns the volume rule off. */
    readonly holdFactor: number;
    readonly holdMinMessages: number;
    readonly holdMinRecipients: number;
    /** Days. */
    readonly holdHistory: number;
    /** Percent; 0 turns the refusal rule off. */
    readonly holdRefusedPercent: number;
    readonly holdRefusedMin: number;
  };
  readonly dns: {
    /** "ip:port" of the resolvers; empty: /etc/resolv.conf. */
    readonly servers: readonly ListenAddress[];
    /** Milliseconds per attempt. */
    readonly timeout: number;
    readonly attempts: number;
    readonly cacheSize: number;
    /** Whose AD bit is believed: "loopback" (every server on loopback), "always", "never". */
    readonly trustAd: "loopback" | "always" | "never";
  };
  readonly checks: {
    readonly enabled: boolean;
    /** "" means server.hostname. */
    readonly authservId: string;
    /** Seconds. */
    readonly timeout: number;
    readonly trustedArcSealers: readonly string[];
    /** ARC sealing of mail an alias forwards to another domain; undefined: off. key is an absolute PEM path. */
    readonly arcSeal?: { readonly domain: string; readonly selector: string; readonly key: string };
    /** "check.result" → action. */
    readonly actions: Readonly<Record<string, CheckAction>>;
    /** Domain → policy to use instead of the published one. */
    readonly dmarcOverrides: Readonly<Record<string, "none" | "quarantine" | "reject">>;
  };
  /** DNS block- and allowlists asked about each MX client (postscreen-style weights and threshold). */
  readonly dnsbl: {
    /** Empty: no DNSBL lookups. */
    readonly zones: readonly DnsblZone[];
    /** A client whose summed weights reach this is listed (verdict "dnsbl.listed"). */
    readonly threshold: number;
    /** Seconds for all lookups of one client; then it is accepted (fail open). */
    readonly timeout: number;
  };
  /** Spam scoring by rspamd (src/spam). */
  readonly spam: {
    /** "http://host:port" of rspamd's normal worker; "" = off. */
    readonly rspamd: string;
    /** Seconds. */
    readonly timeout: number;
    /** Bytes; larger messages are not scanned. */
    readonly maxSize: number;
  };
  /** Lookalike domains and display names of local accounts in mail from outside (src/impersonation). */
  readonly impersonation: {
    readonly enabled: boolean;
    readonly externalTag: boolean;
  };
  /** Virus scanning of every message by clamd (src/antivirus). */
  readonly antivirus: {
    readonly enabled: boolean;
    /** undefined: look for Debian's socket at startup. */
    readonly clamd?: ClamdTarget;
    /** Seconds for connecting and scanning one message. */
    readonly timeout: number;
    /** Bytes; a bigger message is not sent to clamd (verdict "virus.too_large"). Match clamd's StreamMaxLength. */
    readonly maxSize: number;
  };
  /** The attachment policy (src/attachments). */
  readonly attachments: {
    readonly enabled: boolean;
    /** Deepest nesting of MIME parts, attached messages and archives looked into. */
    readonly maxDepth: number;
    /** Most archive entries looked at per message. */
    readonly maxArchiveEntries: number;
    /** Most bytes unpacked from archives per message. */
    readonly maxUnpacked: number;
    /** "domain" or "user@domain" → attachment kind ("executable", ...) → action. */
    readonly overrides: Readonly<Record<string, Readonly<Record<string, CheckAction>>>>;
  };
  readonly queue: {
    /** Seconds. */
    readonly retryMin: number;
    /** Messages in flight per worker's queue manager. */
    readonly concurrency: number;
    readonly retryMax: number;
    readonly lifetime: number;
    /** 0: no delay notices. */
    readonly delayNotice: number;
  };
  readonly outbound: {
    readonly port: number;
    readonly maxConnectionsPerDomain: number;
    readonly messagesPerConnection: number;
    /** Seconds a finished connection stays idle for reuse; 0: none. */
    readonly connectionCacheTime: number;
    /** Seconds; an older connection is not reused. */
    readonly connectionMaxAge: number;
    readonly tlsPolicy: Readonly<Record<string, TlsPolicy>>;
    /** Seconds between two runs of the TLS-RPT report job. */
    readonly tlsrptInterval: number;
    readonly relays: readonly RelayHost[];
  };
  /** The Prometheus endpoint; no listener when empty. */
  readonly metrics: {
    readonly listen: readonly ListenAddress[];
  };
  /** Certificates by ACME (RFC 8555); off when directory is "". */
  readonly acme: {
    readonly directory: string;
    readonly email: string;
    /** Empty: server.hostname. */
    readonly domains: readonly string[];
    readonly httpListen: readonly ListenAddress[];
    /** Absolute path, or "". */
    readonly caFile: string;
    /** Days. */
    readonly renewBefore: number;
    readonly keepKey: boolean;
  };
  /** The HTTPS listener (MTA-STS policy, autoconfig); off when listen is empty. */
  readonly https: {
    readonly listen: readonly ListenAddress[];
    readonly mtaStsMode: "enforce" | "testing" | "none";
    /** Empty: server.hostname. */
    readonly mtaStsMx: readonly string[];
    /** Seconds. */
    readonly mtaStsMaxAge: number;
    /** "": server.hostname. */
    readonly imapHost: string;
    readonly imapPort: number;
    readonly imapTls: "implicit" | "starttls";
  };
  readonly log: {
    readonly level: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  };
}
