/**
 * The bounds that are not configuration keys (design §2.8: every limit
 * registered once). Each one bounds memory, CPU or time that hostile input
 * (a client, a message, a DNS answer, a peer's reply) could otherwise take;
 * each is fixed on purpose, for the reason given. The value lives in the
 * code as the named constant of `file`; src/limits/limits.test.ts checks that
 * the constant and this table agree, and that docs/configuration.md lists
 * every entry with its value ("Fixed limits").
 *
 * A bound an operator may need to tune belongs in LIMIT_SPECS (index.ts)
 * instead, as a `[limits]` key.
 */

import { TASK_LIMITS } from "./fixed-tasks.ts";

export interface FixedLimitSpec {
  /** Name in the docs, unique across fixed and configurable limits. */
  readonly name: string;
  readonly value: number;
  readonly unit: "bytes" | "characters" | "count" | "seconds" | "milliseconds" | "MiB";
  /** The file that enforces it, and the constant there that holds the value. */
  readonly file: string;
  readonly constant: string;
  /** What it bounds and what happens past it. */
  readonly doc: string;
  /** Why it is not a config key. */
  readonly reason: string;
}

const KiB = 1024;
const MiB = 1024 * 1024;

/** Why most protocol bounds are fixed: a standard sets them, or honest traffic never comes near. */
const RFC = "set by the standard; a larger value would only serve abuse";
const FAR = "far above anything honest traffic sends; only hostile input reaches it";

export const FIXED_LIMITS: readonly FixedLimitSpec[] = [
  // ---- SMTP server: protocol core (src/protocol) and connection (src/server)
  {
    name: "max_pending_input", value: 1 * MiB, unit: "bytes", file: "src/protocol/session.ts", constant: "MAX_PENDING",
    doc: "Input kept while the session waits for the host's answer (a policy check, the spool write). Past it the client is cut off with `421 4.7.0`.",
    reason: "pipelined commands of a whole transaction take a few KiB; a client that keeps sending while waiting is flooding",
  },
  {
    name: "max_sasl_line", value: 12288, unit: "bytes", file: "src/protocol/session.ts", constant: "SASL_LINE",
    doc: "Longest SASL response line during AUTH (or `max_line_length` when larger); longer gets `500 5.5.2` and ends the exchange.",
    reason: "RFC 4954 §4 sets 12288 octets",
  },
  {
    name: "max_path_length", value: 256, unit: "bytes", file: "src/protocol/address.ts", constant: "MAX_PATH",
    doc: "Longest reverse or forward path in `MAIL FROM` / `RCPT TO`; longer gets `501 5.1.7`.",
    reason: `RFC 5321 §4.5.3.1.3: ${RFC}`,
  },
  {
    name: "max_local_part", value: 64, unit: "bytes", file: "src/protocol/address.ts", constant: "MAX_LOCAL",
    doc: "Longest local part of an address in `MAIL FROM` / `RCPT TO`; a longer one is a bad address (`501 5.1.7`).",
    reason: `RFC 5321 §4.5.3.1.1: ${RFC}`,
  },
  {
    name: "max_domain_length", value: 255, unit: "bytes", file: "src/protocol/address.ts", constant: "MAX_DOMAIN",
    doc: "Longest domain of an address in `MAIL FROM` / `RCPT TO`; a longer one is a bad address (`501 5.1.7`).",
    reason: `RFC 5321 §4.5.3.1.2: ${RFC}`,
  },
  {
    name: "content_block", value: 64 * KiB, unit: "bytes", file: "src/protocol/data.ts", constant: "BLOCK",
    doc: "DATA/BDAT content is copied into blocks of this size, so the receiver holds about the message's own size whatever its line structure (dot-led lines, 1-byte lines, one huge line).",
    reason: "an internal layout, not a policy: memory per message is bounded by `max_message_size`",
  },
  {
    name: "output_high_water", value: 64 * KiB, unit: "bytes", file: "src/server/connection.ts", constant: "OUTPUT_HIGH_WATER",
    doc: "Replies waiting in the socket above which the connection stops reading (backpressure): a client that does not read its replies stops being read.",
    reason: "one window of replies is all an honest pipelining client needs; more only holds memory",
  },
  {
    name: "feed_slice", value: 4096, unit: "bytes", file: "src/server/connection.ts", constant: "FEED_SLICE",
    doc: "Input is fed to the protocol core in slices of this size, so one read cannot produce more than one slice's replies before backpressure is checked.",
    reason: "an internal granularity of the backpressure above",
  },
  {
    name: "max_received_headers", value: 50, unit: "count", file: "src/server/pipeline/transaction.ts", constant: "MAX_HOPS",
    doc: "More `Received:` fields than this in a message means a mail loop: it is refused with `554 5.4.6`.",
    reason: "Postfix's `hopcount_limit` is 50 too; real paths stay far below it, and a loop reaches it in minutes whatever the value",
  },
  {
    name: "refused_linger", value: 1000, unit: "milliseconds", file: "src/server/listeners.ts", constant: "REFUSED_LINGER_MS",
    doc: "A connection refused with `421` (a limit was hit) is closed as soon as its reply is written, and destroyed after this long at the latest even when the client never reads or closes, so refused connections cannot hold slots.",
    reason: "long enough for the reply to leave; nothing is gained by waiting longer",
  },
  {
    name: "evict_idle", value: 1000, unit: "milliseconds", file: "src/server/listeners.ts", constant: "EVICT_IDLE_MS",
    doc: "A full listener closes a session to make room only when it made no progress for this long (see `max_mx_connections`).",
    reason: "working sessions make progress every round trip; this only tells working from idle",
  },
  {
    name: "evict_fair_idle", value: 250, unit: "milliseconds", file: "src/server/listeners.ts", constant: "FAIR_IDLE_MS",
    doc: "... or this long, for a session of the client holding the most connections (see `max_mx_connections`).",
    reason: "as above: a round trip on any real network is shorter",
  },
  {
    name: "slow_client_memory", value: 60, unit: "seconds", file: "src/server/listeners.ts", constant: "SLOW_CLIENT_S",
    doc: "A client one of whose sessions let a command line reach `command_timeout` is remembered this long: while a listener group is under pressure (see `stress_timeout`), its new connections there get `421 4.7.0` (see `command_timeout`).",
    reason: "longer than a slowloris takes to come back after a timeout; short enough that an honest client on a bad link is not kept out for long, and only under pressure",
  },
  {
    name: "slow_refusal_delay", value: 2000, unit: "milliseconds", file: "src/server/listeners.ts", constant: "SLOW_REFUSAL_DELAY_MS",
    doc: "A slow client refused under pressure (see `slow_client_memory`) gets its `421` this long after it connected, its socket unread meanwhile, so that it comes back less often.",
    reason: "a slowloris reconnecting at once after each refusal would cost a refusal every few hundred milliseconds per connection; two seconds cut that several times over and hold few sockets",
  },
  {
    name: "slow_refusal_hold_share", value: 2, unit: "count", file: "src/server/listeners.ts", constant: "SLOW_HOLD_SHARE",
    doc: "At most `max_connections` divided by this of those refusals are held at once per worker thread; past it they are refused at once.",
    reason: "bounds the descriptors held for refusals to half of those the connection limit allows",
  },
  {
    name: "repeat_refusals", value: 5, unit: "count", file: "src/server/listeners.ts", constant: "REPEAT_REFUSALS",
    doc: "A client refused by `max_connections_per_client` or `connections_per_client_per_minute` more than this many times within `client_log_interval` gets its further refusals there after `slow_refusal_delay`, its socket unread meanwhile (within `slow_refusal_hold_share`); so does a client refused by a full listener (`max_connections`, `max_mx_connections`, `max_submission_connections`) more than this many times within `client_log_interval` while it holds connections there. The first refusals, and a client that holds none, are answered at once.",
    reason: "a flood that reconnects at once after each 421 costs a refusal and a TCP handshake on both sides every few milliseconds per loop; an honest client is refused a few times at most before it waits and retries",
  },
  {
    name: "client_log_interval", value: 10_000, unit: "milliseconds", file: "src/server/listeners.ts", constant: "LOG_EVERY_MS",
    doc: "A refused client is logged once per limit in this time, with `suppressed` counting the refusals in between (a flood must not flood the log).",
    reason: "enough for fail2ban to match at once; the count keeps the rest",
  },
  {
    name: "client_table_probe", value: 64, unit: "count", file: "src/server/clients.ts", constant: "PROBE",
    doc: "Slots probed in the shared per-client table to find or place a client; a client that finds no slot in its run is not counted (and counted as untracked).",
    reason: "the table is sized for every connection of every worker several times over; a longer probe only costs CPU under a many-address flood",
  },
  {
    name: "client_table_stale", value: 120, unit: "seconds", file: "src/server/clients.ts", constant: "STALE_S",
    doc: "A client with no open connection, no ban and no activity for this long gives its slot in the shared table to a new one.",
    reason: "longer than the per-minute rate windows it must remember",
  },
  {
    name: "client_key_cache", value: 4096, unit: "count", file: "src/server/clients.ts", constant: "KEY_CACHE",
    doc: "Client addresses whose table key is kept per thread; at the bound the cache starts again.",
    reason: "a CPU cache only: a miss costs one parse of the address",
  },
  {
    name: "young_generation", value: 8, unit: "MiB", file: "src/server/primary.ts", constant: "YOUNG_GENERATION_MB",
    doc: "Young-generation heap of each worker thread (the old generation is `worker_heap_limit`).",
    reason: "a GC tuning: bounds memory per worker at a small cost in collections",
  },
  // ---- authentication
  {
    name: "max_sasl_message", value: 4096, unit: "bytes", file: "src/auth/scram.ts", constant: "MAX_SASL_MESSAGE",
    doc: "Longest decoded client message any SASL mechanism accepts; a longer one fails the exchange.",
    reason: FAR,
  },
  {
    name: "max_sasl_id", value: 255, unit: "bytes", file: "src/auth/scram.ts", constant: "MAX_SASL_ID",
    doc: "Longest user name or authorization identity in AUTH.",
    reason: "RFC 4616 §2 suggests it for PLAIN; account names are addresses, well below",
  },
  {
    name: "max_sasl_password", value: 1024, unit: "bytes", file: "src/auth/scram.ts", constant: "MAX_SASL_PASSWORD",
    doc: "Longest password in AUTH (the account store refuses longer ones too).",
    reason: FAR,
  },
  {
    name: "max_concurrent_hashes", value: 4, unit: "count", file: "src/auth/password.ts", constant: "MAX_CONCURRENT",
    doc: "Password hashes (argon2id) computed at once per thread; more AUTH attempts wait their turn, so a flood of AUTH cannot take every core or the libuv pool.",
    reason: "the libuv thread pool has 4 threads; more at once would only queue there and block disk work",
  },
  {
    name: "max_app_passwords", value: 50, unit: "count", file: "src/accounts/store.ts", constant: "MAX_APP_PASSWORDS",
    doc: "App passwords per account: each is a key pair SCRAM tries and a hash PLAIN compares, so the count bounds the work of one login.",
    reason: "a person has a handful of devices; the bound keeps one login's CPU small",
  },
  {
    name: "max_known_networks", value: 64, unit: "count", file: "src/submission/guard.ts", constant: "MAX_KNOWN_NETWORKS",
    doc: "Client networks remembered per account where it logged in successfully (the most recent are kept): from those, an account lock does not apply (`auth.known_network_window`).",
    reason: "an internal bound on stored rows, not a client-visible limit",
  },
  {
    name: "max_counted_user_name", value: 320, unit: "characters", file: "src/submission/guard.ts", constant: "MAX_NAME",
    doc: "Longest user name the login guard counts failures for (a longer one is cut): the key of one row.",
    reason: "an address is at most 320 characters (RFC 5321 local part and domain)",
  },
  {
    name: "max_logged_user_name", value: 320, unit: "characters", file: "src/submission/auth.ts", constant: "MAX_USER",
    doc: "Longest user name kept for counting and logging on a failed AUTH (a longer one is cut).",
    reason: "as `max_counted_user_name`",
  },
  // ---- message content
  {
    name: "max_mailboxes_per_field", value: 100, unit: "count", file: "src/message/address.ts", constant: "MAX_MAILBOXES",
    doc: "Mailboxes parsed in one address field (`From:`, `Sender:`, ...); a field with more is invalid.",
    reason: FAR,
  },
  {
    name: "max_address_field", value: 65536, unit: "characters", file: "src/message/address.ts", constant: "MAX_FIELD_CHARS",
    doc: "Longest address field value parsed; a longer one is invalid.",
    reason: FAR,
  },
  {
    name: "max_parsed_author_fields", value: 10, unit: "count", file: "src/message/author.ts", constant: "MAX_PARSED_FIELDS",
    doc: "Fields of one name (`From:`, `Resent-From:`) parsed per message; the rest are only counted (a second `From:` is refused anyway).",
    reason: FAR,
  },
  {
    name: "max_dkim_signatures", value: 10, unit: "count", file: "src/mailauth/bounds.ts", constant: "MAX_SIGNATURES",
    doc: "DKIM signatures verified per message; the rest are not verified (each costs DNS queries and a hash of the body).",
    reason: "real mail carries one to three; more is an attempt to multiply our work",
  },
  {
    name: "max_dkim_signed_fields", value: 128, unit: "count", file: "src/mailauth/bounds.ts", constant: "MAX_SIGNED_FIELDS",
    doc: "Field names in one signature's `h=` tag beyond which the signature is not verified.",
    reason: FAR,
  },
  {
    name: "max_dmarc_author_domains", value: 10, unit: "count", file: "src/mailauth/check.ts", constant: "MAX_AUTHOR_DOMAINS",
    doc: "Author domains DMARC is evaluated for; a message naming more gets `dmarc.reject` for the rest.",
    reason: FAR,
  },
  {
    name: "spf_result_reuse", value: 5 * 60_000, unit: "milliseconds", file: "src/mailauth/check.ts", constant: "SPF_KEPT_MS",
    doc: "Longest time an SPF result is reused within one connection (a long-lived connection still sees DNS changes).",
    reason: "a freshness bound of the per-connection memo, not a policy",
  },
  {
    name: "max_kept_dkim_key_record", value: 8192, unit: "bytes", file: "src/mailauth/verify.ts", constant: "MAX_KEPT_RECORD",
    doc: "Longest DKIM key record (with its lookup options) kept between messages; longer ones are looked up each time.",
    reason: "RSA-4096 keys take under 1 KiB; the bound keeps hostile records out of the cache",
  },
  {
    name: "spf_results_per_connection", value: 32, unit: "count", file: "src/policy/state.ts", constant: "SPF_PER_CONNECTION",
    doc: "SPF results kept per connection (for the next transactions with the same sender); past it results are computed again.",
    reason: "a cache bound: a miss costs a fresh evaluation, never a wrong answer",
  },
  {
    name: "max_mime_parts", value: 1000, unit: "count", file: "src/attachments/walk.ts", constant: "MAX_PARTS",
    doc: "MIME parts the attachment walk's MIME splitter takes from one message (`maxChildNodes`).",
    reason: FAR,
  },
  {
    name: "max_mime_part_header", value: 64 * KiB, unit: "bytes", file: "src/attachments/walk.ts", constant: "MAX_HEAD",
    doc: "Largest header block of one MIME part the attachment walk's MIME splitter reads (`maxHeadSize`).",
    reason: FAR,
  },
  {
    name: "attachment_head", value: 64 * KiB, unit: "bytes", file: "src/attachments/walk.ts", constant: "HEAD",
    doc: "Bytes kept from the start of every attachment to recognise its type (ISO 9660 signatures are at 32 KiB).",
    reason: "set by the file formats recognised, not by policy",
  },
  {
    name: "attachment_tail", value: 512, unit: "bytes", file: "src/attachments/walk.ts", constant: "TAIL",
    doc: "Bytes kept from the end of every attachment (VHD and DMG footers).",
    reason: "set by the file formats recognised",
  },
  {
    name: "max_rar_headers", value: 64, unit: "count", file: "src/attachments/detect.ts", constant: "MAX_RAR_HEADERS",
    doc: "Archive headers looked at in the head of a RAR file.",
    reason: "the head kept is 64 KiB; this bounds the loop over it",
  },
  {
    name: "attachment_inline_max", value: 128 * KiB, unit: "bytes", file: "src/attachments/check.ts", constant: "INLINE_MAX",
    doc: "Messages up to this size are walked on the session thread (well under a millisecond); bigger ones go to a walker thread where the check deadline can stop the work.",
    reason: "a cost trade-off measured once (a thread round trip costs more than walking a small message)",
  },
  {
    name: "max_logged_findings", value: 20, unit: "count", file: "src/attachments/check.ts", constant: "MAX_LOGGED",
    doc: "Attachment findings written to the log line of one message.",
    reason: "the verdict comes from all of them; the log only needs examples",
  },
  // ---- task threads, peers' answers (clamd, rspamd) and caches of checks: fixed-tasks.ts
  ...TASK_LIMITS,
  // ---- DNS (answers are hostile too)
  {
    name: "max_cname_chain", value: 10, unit: "count", file: "src/dns/packet.ts", constant: "MAX_CHAIN",
    doc: "CNAME links followed in one answer; a longer chain is a bad answer.",
    reason: FAR,
  },
  {
    name: "max_dns_positive_ttl", value: 86400, unit: "seconds", file: "src/dns/packet.ts", constant: "MAX_POSITIVE_TTL",
    doc: "Longest time an answer is cached, whatever TTL it carries.",
    reason: "a day, as common resolvers cap it; a longer TTL only pins a poisoned answer",
  },
  {
    name: "max_dns_negative_ttl", value: 300, unit: "seconds", file: "src/dns/packet.ts", constant: "MAX_NEGATIVE_TTL",
    doc: "Longest time a negative answer (no such name or record) is cached.",
    reason: "short, so a record just published is seen soon",
  },
  {
    name: "dns_cache_bytes", value: 8 * MiB, unit: "bytes", file: "src/dns/wire-resolver.ts", constant: "MAX_CACHE_BYTES",
    doc: "Estimated memory of the answers one thread's DNS cache keeps (`dns.cache_size` bounds their number); the least recently used go first.",
    reason: "10,000 typical answers take about 3 MiB; without it 10,000 answers of 64 KiB from a hostile zone would hold 640 MB per thread",
  },
  {
    name: "max_name_servers", value: 3, unit: "count", file: "src/dns/system.ts", constant: "MAXNS",
    doc: "Name servers read from `/etc/resolv.conf` when `dns.servers` is empty.",
    reason: "glibc's MAXNS is 3 too",
  },
  {
    name: "max_caa_value", value: 1024, unit: "characters", file: "src/dns/types.ts", constant: "MAX_CAA_VALUE",
    doc: "Longest CAA record value kept (the rest is cut off).",
    reason: "CAA values are issuer names and URLs, far shorter",
  },
  // ---- outbound: remote servers' replies
  {
    name: "max_reply_lines", value: 100, unit: "count", file: "src/protocol/client-wire.ts", constant: "MAX_REPLY_LINES",
    doc: "Lines of one reply from a remote server; more ends the connection (the delivery is deferred).",
    reason: FAR,
  },
  {
    name: "max_reply_line", value: 2048, unit: "bytes", file: "src/protocol/client-wire.ts", constant: "DEFAULT_MAX_LINE",
    doc: "Longest reply line from a remote server; longer ends the connection (the delivery is deferred).",
    reason: "four times RFC 5321's 512; a reply longer than that is not SMTP",
  },
  {
    name: "max_mx_hosts", value: 10, unit: "count", file: "src/outbound/mx.ts", constant: "MAX_MX_HOSTS",
    doc: "MX hosts tried per delivery attempt.",
    reason: "RFC 5321 §5.1 allows a limit; more only spends time on a domain that fails anyway",
  },
  {
    name: "max_peer_chain", value: 10, unit: "count", file: "src/outbound/dane.ts", constant: "MAX_CHAIN",
    doc: "Certificates of a remote server's chain looked at for DANE.",
    reason: FAR,
  },
  {
    name: "max_mta_sts_policy", value: 64 * KiB, unit: "bytes", file: "src/outbound/mta-sts.ts", constant: "MAX_POLICY_BYTES",
    doc: "Largest MTA-STS policy fetched; a larger one is no policy (RFC 8461 §3.3 suggests 64 KiB).",
    reason: `RFC 8461 §3.3: ${RFC}`,
  },
  {
    name: "max_returned_content", value: 1 * MiB, unit: "bytes", file: "src/outbound/dsn.ts", constant: "MAX_RETURNED_CONTENT",
    doc: "Largest original returned whole in a bounce with `RET=FULL`; larger ones come back as headers only.",
    reason: "RFC 3461 lets the MTA return headers only; a bounce must not double a large message",
  },
  {
    name: "max_tlsrpt_json", value: 20 * MiB, unit: "bytes", file: "src/outbound/tlsrpt-read.ts", constant: "MAX_JSON",
    doc: "Largest report a gzipped TLS-RPT part may unpack to when a report message is read (a gzip bomb stops there).",
    reason: FAR,
  },
  {
    name: "max_tlsrpt_detail", value: 300, unit: "characters", file: "src/outbound/tlsrpt.ts", constant: "MAX_DETAIL",
    doc: "Longest failure detail (from a remote server's reply) written into a TLS-RPT report.",
    reason: "enough to tell the failure; a remote server's text must not grow our reports",
  },
  {
    name: "max_dsn_field_value", value: 900, unit: "characters", file: "src/outbound/dsn.ts", constant: "MAX_VALUE",
    doc: "Longest value (a remote reply, an address) written into a field of a bounce, after cleaning: keeps every line under 998 bytes.",
    reason: "RFC 5322 \u00a72.1.1 caps a line at 998 characters",
  },
  {
    name: "max_outbound_tls_contexts", value: 16, unit: "count", file: "src/outbound/tls-context.ts", constant: "MAX_TLS_CONTEXTS",
    doc: "Client TLS contexts the outbound SMTP client keeps and shares between its sessions, one per distinct set of CA certificates and protocol versions (the default set and one per relay `ca_file`); past it a session builds a context of its own, as tls.connect does.",
    reason: "the number of distinct sets is the number of relay `ca_file`s plus one; past it sharing only saves CPU, never changes a result",
  },
  {
    name: "max_cached_connections", value: 32, unit: "count", file: "src/outbound/pool.ts", constant: "MAX_CACHED",
    doc: "Idle outbound SMTP connections a worker keeps open for reuse, all destinations together (`outbound.connection_cache_time`); a connection that finds the cache full is closed with QUIT.",
    reason: "each idle connection holds a socket and its TLS buffers; per destination `outbound.max_connections_per_domain` bounds it already, this bounds the sum when many destinations are busy at once",
  },
  {
    name: "reuse_probe_timeout", value: 20000, unit: "milliseconds", file: "src/outbound/connect.ts", constant: "PROBE_TIMEOUT_MS",
    doc: "How long the RSET that opens a reused outbound connection waits for its reply (at most the command timeout); then the batch goes on a fresh connection, not counted as a failed attempt.",
    reason: "a connection dropped silently while idle (a firewall, a NAT) answers nothing; a live server answers RSET at once (Postfix's smtp_rset_timeout is 20 s)",
  },
  {
    name: "max_acme_tokens", value: 100, unit: "count", file: "src/acme/challenge.ts", constant: "MAX_TOKENS",
    doc: "ACME http-01 tokens served at once (an order for a few names has one per name); at the bound the set starts again.",
    reason: "an order has one token per name; the set is ours, the bound a safety net",
  },
  // ---- HTTPS (MTA-STS policy, autoconfig) and metrics listeners
  {
    name: "https_connections", value: 64, unit: "count", file: "src/https/server.ts", constant: "MAX_CONNECTIONS",
    doc: "Open connections to the HTTPS listener; past it new ones are closed.",
    reason: "it serves a few small documents to mail servers and clients; 64 at once is a lot",
  },
  {
    name: "https_headers", value: 32, unit: "count", file: "src/https/server.ts", constant: "MAX_HEADERS",
    doc: "Header fields of one HTTPS request read (Node's `maxHeadersCount`); the rest are dropped.",
    reason: FAR,
  },
  {
    name: "https_body", value: 8192, unit: "bytes", file: "src/https/server.ts", constant: "MAX_BODY",
    doc: "Largest request body (an Autodiscover POST); larger gets `413`.",
    reason: FAR,
  },
  {
    name: "https_request_timeout", value: 10_000, unit: "milliseconds", file: "src/https/server.ts", constant: "REQUEST_TIMEOUT_MS",
    doc: "Time allowed for one HTTPS request, headers and body.",
    reason: "a small document on any network arrives in far less",
  },
  {
    name: "metrics_connections", value: 16, unit: "count", file: "src/metrics/server.ts", constant: "MAX_CONNECTIONS",
    doc: "Open connections to the metrics listener.",
    reason: "a handful of scrapers; the listener is meant for loopback or a trusted network",
  },
  {
    name: "metrics_request_timeout", value: 10_000, unit: "milliseconds", file: "src/metrics/server.ts", constant: "REQUEST_TIMEOUT_MS",
    doc: "Time allowed for one metrics request.",
    reason: "as `https_request_timeout`",
  },
  // ---- queue
  {
    name: "max_handoff_messages", value: 1024, unit: "count", file: "src/queue/handoff.ts", constant: "HANDOFF_MAX",
    doc: "Messages kept in memory per worker for the queue manager once durable (the bytes are bounded by `max_handoff_bytes`); past it a message is claimed from the database when due.",
    reason: "the byte bound is the one that matters for memory; this only bounds bookkeeping",
  },
  {
    name: "handoff_lease", value: 10 * 60_000, unit: "milliseconds", file: "src/queue/handoff.ts", constant: "HANDOFF_LEASE_MS",
    doc: "How far the first attempt of a handed-off message is leased in the database; past it the database path owns the message again.",
    reason: "an internal hand-over between the memory and database paths, not a policy",
  },
  {
    name: "max_content_bytes", value: 1_000_000_000, unit: "bytes", file: "src/queue/record.ts", constant: "MAX_CONTENT_BYTES",
    doc: "Largest message content one spool record can hold; a larger message is refused alone, never with its batch.",
    reason: "SQLite's largest value (SQLITE_MAX_LENGTH); `max_message_size` stays well below it",
  },
  {
    name: "spool_sqlite_cache", value: 512 * KiB, unit: "bytes", file: "src/queue/db.ts", constant: "SPOOL_CACHE_BYTES",
    doc: "SQLite page cache of each spool database connection (SQLite's default is 2000 KiB); pages beyond it are read again from the file (the OS page cache).",
    reason: "resident memory, not a policy: rows are written once and read back soon; a larger cache cost memory in every thread without saving CPU (docs/benchmarks.md)",
  },
  {
    name: "spool_outcome_delay", value: 20, unit: "milliseconds", file: "src/queue/spool.ts", constant: "OUTCOME_DELAY_MS",
    doc: "Delivery outcomes are written to the spool in one transaction this long after the first of them (sooner when `spool_outcome_batch` wait, when a commit of new messages takes them along: `spool_outcome_group`, `spool_outcome_recent`, or when shutdown or a claim writes them: one that finds messages due, or whose waiting outcomes put a message back due at once); a crash in that time only means those messages are delivered again (at-least-once).",
    reason: "a trade between spool writes per message and duplicates after a crash, not a policy (docs/benchmarks.md)",
  },
  {
    name: "spool_outcome_batch", value: 256, unit: "count", file: "src/queue/spool.ts", constant: "OUTCOME_BATCH",
    doc: "Delivery outcomes waiting for the spool's next transaction; at this many they are written at once.",
    reason: "bounds the bookkeeping kept in memory between deliveries and their commit",
  },
  {
    name: "spool_outcome_group", value: 16, unit: "count", file: "src/queue/spool.ts", constant: "OUTCOME_GROUP",
    doc: "Delivery outcomes waiting that a commit of new messages takes along (fewer waiting: they wait for `spool_outcome_delay`, unless every one waiting is recent: `spool_outcome_recent`).",
    reason: "spreads the rewrite of the oldest rows' pages over many messages without a transaction of its own, not a policy (docs/benchmarks.md)",
  },
  {
    name: "spool_outcome_recent", value: 4, unit: "count", file: "src/queue/spool.ts", constant: "OUTCOME_RECENT_COMMITS",
    doc: "Delivery outcomes of messages handed to delivery within this many group commits go with the next commit of new messages even when fewer than `spool_outcome_group` wait (their rows are in the pages that commit writes anyway).",
    reason: "spool writes per message at one message per connection (about a third fewer WAL frames), not a policy (docs/benchmarks.md)",
  },
  // ---- config file
  {
    name: "max_config_file", value: 1 * MiB, unit: "bytes", file: "src/config/load.ts", constant: "MAX_FILE_BYTES",
    doc: "Largest config file read; a larger one is refused at start-up.",
    reason: "a real config is a few KiB",
  },
  {
    name: "max_dnsbl_zones", value: 20, unit: "count", file: "src/config/dnsbl.ts", constant: "MAX_DNSBL_ZONES",
    doc: "Most zones in `dnsbl.zones` (each is a query per new client address).",
    reason: "postscreen setups use a handful; more multiplies queries per connection",
  },
  {
    name: "max_alias_depth", value: 20, unit: "count", file: "src/sink/resolve.ts", constant: "MAX_ALIAS_DEPTH",
    doc: "Aliases followed through one another when a recipient is routed; a deeper chain (or a loop) stops there and that branch is not delivered (the rest is).",
    reason: "it bounds the operator's own table, not client input; real alias chains are two or three deep",
  },
  // ---- operator commands that read from remote servers (wardmail audit, wardmail send)
  {
    name: "audit_max_bytes", value: 256 * KiB, unit: "bytes", file: "src/audit/probe.ts", constant: "MAX_BYTES",
    doc: "Everything one audit probe connection may receive from the server audited; more ends the probe.",
    reason: "an SMTP dialogue is a few KiB; the server audited is not trusted",
  },
  {
    name: "audit_max_spf_includes", value: 10, unit: "count", file: "src/audit/domain-auth.ts", constant: "MAX_INCLUDES",
    doc: "SPF `include:` terms of a domain the audit follows.",
    reason: "RFC 7208 \u00a74.6.4 allows 10 DNS-querying terms in all",
  },
  {
    name: "send_max_wkd_answer", value: 256 * KiB, unit: "bytes", file: "src/send/wkd.ts", constant: "MAX_WKD_BYTES",
    doc: "Largest Web Key Directory answer `wardmail send` reads when it looks up a recipient's key.",
    reason: "a key is a few KiB; the web server is not trusted",
  },
  {
    name: "send_max_scram_iterations", value: 1_000_000, unit: "count", file: "src/send/scram.ts", constant: "MAX_ITERATIONS",
    doc: "Largest SCRAM iteration count `wardmail send` accepts from a submission server; more fails the login.",
    reason: "a hostile server must not make the client spin; honest servers use 4096 to some 100,000",
  },
  {
    name: "dovecot_max_request", value: 512, unit: "bytes", file: "src/cli/dovecot.ts", constant: "MAX_REQUEST",
    doc: "Largest request read from Dovecot's checkpassword interface (fd 3).",
    reason: "Dovecot sends at most 512 bytes",
  },
];
