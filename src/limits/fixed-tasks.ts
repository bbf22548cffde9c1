/**
 * The fixed limits of the task threads (src/threads and the pools that use
 * them) and of the peers' answers and the checks' caches: a part of
 * FIXED_LIMITS (fixed.ts, which says what a fixed limit is), in its own file
 * only to keep each file short; fixed.ts places these entries in its table.
 */
import type { FixedLimitSpec } from "./fixed.ts";

const KiB = 1024;
const MiB = 1024 * 1024;

export const TASK_LIMITS: readonly FixedLimitSpec[] = [
  // ---- task threads (CPU-heavy work off the event loop, src/threads)
  {
    name: "verifier_threads", value: 4, unit: "count", file: "src/mailauth/offload.ts", constant: "MAX_THREADS",
    doc: "DKIM/ARC verifier threads per worker thread, in one pool that the primary holds for all of them (so at most `server.workers` times this). A pool normally runs one thread (most of a verification waits for DNS) and starts another only while one is stuck (see `task_stall`), up to this.",
    reason: "with `server.workers` one per core, more threads than this only compete for the same cores",
  },
  {
    name: "verifier_kept_answers", value: 2048, unit: "count", file: "src/mailauth/thread.ts", constant: "MAX_KEPT_ANSWERS",
    doc: "DNS answers a verifier thread keeps, each within the TTL the session thread's resolver gave it (the oldest goes first).",
    reason: "the session thread's resolver cache (`dns.cache_size`) is the real cache; this only spares the cross-thread round trip for busy domains",
  },
  {
    name: "verifier_kept_answer_bytes", value: 2 * MiB, unit: "bytes", file: "src/mailauth/thread.ts", constant: "MAX_KEPT_ANSWER_BYTES",
    doc: "Estimated memory of the DNS answers a verifier thread keeps (`verifier_kept_answers` bounds their number); the oldest go first, an answer heavier than this alone is not kept.",
    reason: "a busy domain's key and policies take a few KiB; without it 2048 answers of 64 KiB from a hostile zone would hold 128 MiB per thread",
  },
  {
    name: "task_stall", value: 100, unit: "milliseconds", file: "src/threads/index.ts", constant: "STALL_MS",
    doc: "A pool thread that has had a task this long and shown no sign of life for as long (no task read or resumed, no heartbeat) is stuck (a slow synchronous parse holds its event loop): its tasks but the one holding it move to another thread, started for them when needed.",
    reason: "a thread that reads its messages acknowledges in well under a millisecond; this only tells a stuck thread from a busy one",
  },
  {
    name: "task_hold", value: 1000, unit: "milliseconds", file: "src/threads/index.ts", constant: "HOLD_MS",
    doc: "A pool thread stuck this long gives up the task holding it too (it runs again in another thread, each task a thread had read at most as many times as its pool has threads: `verifier_threads`, `walker_threads`; a task no thread read, at most `task_reposts` times) and is ended, which stops the parse.",
    reason: "the holder is known from a note the thread writes when it resumes a task; this bounds the harm when the note is wrong, at one thread start per move",
  },
  {
    name: "task_abandon_grace", value: 200, unit: "milliseconds", file: "src/threads/index.ts", constant: "GRACE_MS",
    doc: "A verification past the check deadline in a verifier thread that is not stuck (its heartbeat moved within `task_stall`: it waits, for DNS) is abandoned there, not ended with the thread: its DNS questions fail at once and it must end within this time, else its thread is ended (its other tasks run again once in another thread). A stuck thread is ended at once.",
    reason: "a verification whose DNS questions all fail ends in a few milliseconds; one still running after this computes, and only ending the thread stops it",
  },
  {
    name: "task_reposts", value: 8, unit: "count", file: "src/threads/index.ts", constant: "MAX_REPOSTS",
    doc: "A task a pool thread never read cannot have caused that thread's end or stall: taken from a stuck thread, or left in one that ends, it runs again in another thread whatever its moves, at most this many times (then it fails as before). Bounds a task without a deadline in a pool whose threads end before reading anything.",
    reason: "such a task ran no code, so running it again is safe; a check's task is settled by its deadline long before; this only stops a broken thread entry from being started for ever",
  },
  {
    name: "task_thread_idle", value: 30_000, unit: "milliseconds", file: "src/threads/index.ts", constant: "IDLE_MS",
    doc: "An idle pool thread beyond the first is ended after this time.",
    reason: "a thread costs about 150 ms of module loading to start and its own heap while it lives; this keeps one for bursts without holding memory for long",
  },
  {
    name: "task_young_generation", value: 4, unit: "MiB", file: "src/threads/index.ts", constant: "YOUNG_GENERATION_MB",
    doc: "Young-generation heap of each task thread (verifier, attachment walker, encryption thread).",
    reason: "with V8's default, two verifier threads held about 25 MiB more at the same CPU; 4 MiB instead of 8 keeps about 5 MiB less at the stack bench's peak (toward its 200 MB bound, not reliably under it) for 0.03–0.04 ms more of the verifier's CPU per message (1–1.5 % of the server's)",
  },
  {
    name: "verifier_heap", value: 256, unit: "MiB", file: "src/mailauth/offload.ts", constant: "HEAP_MB",
    doc: "Old-generation heap of each verifier thread; a thread that hits it is ended and restarted, its tasks fail and the check fails closed.",
    reason: "one task holds one message (bounded by `max_message_size`) and its parse; the cap turns a runaway parse into a clean failure",
  },
  {
    name: "walker_threads", value: 2, unit: "count", file: "src/attachments/offload.ts", constant: "MAX_THREADS",
    doc: "Attachment walker threads per worker thread, started as for `verifier_threads`.",
    reason: "as `verifier_threads`; the walk is cheaper than verification",
  },
  {
    name: "walker_heap", value: 256, unit: "MiB", file: "src/attachments/offload.ts", constant: "HEAP_MB",
    doc: "Old-generation heap of each attachment walker thread; a thread that hits it is ended and restarted, its tasks fail and the check fails closed.",
    reason: "as `verifier_heap`",
  },
  {
    name: "encryption_heap", value: 512, unit: "MiB", file: "src/e2e/offload.ts", constant: "HEAP_MB",
    doc: "Old-generation heap of the encrypt-on-store thread; a thread that hits it is ended and restarted, and its tasks fail.",
    reason: "OpenPGP and CMS hold a message and its ciphertext at once; the cap turns a runaway into a deferral",
  },
  {
    name: "encryption_task_timeout", value: 120_000, unit: "milliseconds", file: "src/e2e/offload.ts", constant: "TASK_TIMEOUT_MS",
    doc: "Longest one encrypt-on-store task may run; then the thread is ended and restarted, and its tasks fail.",
    reason: "encrypting the largest message takes seconds; more means the thread is stuck",
  },
  {
    name: "encryption_tasks_in_thread", value: 2, unit: "count", file: "src/e2e/offload.ts", constant: "IN_THREAD",
    doc: "Encrypt-on-store tasks in the thread at once; the others wait (each holds a message and its ciphertext).",
    reason: "bounds the thread's memory to two messages' worth",
  },
  {
    name: "encryption_inline_max", value: 64 * KiB, unit: "bytes", file: "src/e2e/offload.ts", constant: "INLINE_MAX",
    doc: "Messages up to this size are encrypted on the calling thread (about a millisecond); bigger ones go to the encryption thread.",
    reason: "a cost trade-off, as `attachment_inline_max`",
  },
  {
    name: "max_key_file", value: 1 * MiB, unit: "bytes", file: "src/e2e/keys.ts", constant: "MAX_KEY_BYTES",
    doc: "Largest public key file (OpenPGP or certificate) read for encrypt-on-store.",
    reason: "an OpenPGP key with many signatures is a few 100 KiB at most",
  },
  {
    name: "max_keys_per_account", value: 10, unit: "count", file: "src/e2e/keystore.ts", constant: "MAX_KEYS_PER_ACCOUNT",
    doc: "Encryption keys stored per account; importing one more is refused.",
    reason: "one message is encrypted to each; more only multiplies the work",
  },
  {
    name: "parsed_key_cache", value: 1000, unit: "count", file: "src/e2e/keystore.ts", constant: "MAX_CACHED",
    doc: "Parsed public keys kept in memory (by the hash of their text); at the bound the cache starts again.",
    reason: "a cache bound: a miss costs one parse",
  },
  {
    name: "thread_key_cache", value: 200, unit: "count", file: "src/e2e/thread.ts", constant: "MAX_CACHED",
    doc: "Parsed public keys kept in the encryption thread; at the bound the cache starts again.",
    reason: "as `parsed_key_cache`",
  },
  {
    name: "max_content_type_read", value: 4096, unit: "characters", file: "src/e2e/mime.ts", constant: "MAX_CONTENT_TYPE",
    doc: "A Content-Type value is read up to this many characters to tell whether a message is already encrypted.",
    reason: "a real Content-Type is far shorter",
  },
  {
    name: "inline_pgp_window", value: 4096, unit: "bytes", file: "src/e2e/mime.ts", constant: "INLINE_WINDOW",
    doc: "How much of a single-part body is searched for an inline PGP message.",
    reason: "the armor header starts the body of an inline PGP message",
  },
  {
    name: "pgp_evidence_window", value: 64 * KiB, unit: "bytes", file: "src/e2e/mime.ts", constant: "EVIDENCE_WINDOW",
    doc: "How much of a body is searched for evidence of ciphertext.",
    reason: "bounds the scan of every message to a constant",
  },
  // ---- peers' answers (clamd, rspamd) and caches of checks
  {
    name: "max_clamd_reply", value: 4096, unit: "bytes", file: "src/antivirus/clamd.ts", constant: "MAX_REPLY",
    doc: "Largest reply read from clamd; a longer one is an error (the check fails closed).",
    reason: "a signature name is far shorter",
  },
  {
    name: "max_rspamd_answer", value: 1 * MiB, unit: "bytes", file: "src/spam/rspamd.ts", constant: "MAX_ANSWER",
    doc: "Largest answer read from rspamd; a longer one is an error (the check fails closed).",
    reason: "rspamd's JSON for a normal message is a few KiB",
  },
  {
    name: "rspamd_connections", value: 64, unit: "count", file: "src/spam/rspamd.ts", constant: "MAX_SOCKETS",
    doc: "Connections to rspamd at once per worker thread; more scans wait for a free one (within the check deadline).",
    reason: "rspamd scans on its own cores; more connections only queue there",
  },
  {
    name: "max_rspamd_recipients", value: 1000, unit: "count", file: "src/spam/rspamd.ts", constant: "MAX_RCPT_HEADERS",
    doc: "Recipients passed to rspamd as `Rcpt` headers.",
    reason: "rspamd's own `max_recipients` default is 1024",
  },
  {
    name: "max_clamd_signature", value: 200, unit: "characters", file: "src/antivirus/clamd.ts", constant: "MAX_SIGNATURE",
    doc: "Longest signature name from clamd passed on in replies and logs (a longer one is cut).",
    reason: "real signature names are far shorter",
  },
  {
    name: "dnsbl_cache", value: 10_000, unit: "count", file: "src/policy/dnsbl.ts", constant: "MAX_CACHE",
    doc: "Client addresses whose DNSBL result is kept per worker thread (the oldest goes first).",
    reason: "a cache bound: a miss costs one round of queries through the resolver, which caches too",
  },
  {
    name: "lookalike_cache", value: 4096, unit: "count", file: "src/impersonation/check.ts", constant: "LOOKALIKE_CACHE",
    doc: "`From:` domains whose lookalike answer is kept (the oldest goes first).",
    reason: "a cache bound: a miss costs one comparison with the local names",
  },
  {
    name: "max_metric_series", value: 5000, unit: "count", file: "src/metrics/registry.ts", constant: "MAX_SERIES",
    doc: "Metric series kept per thread; past it new series are dropped and counted (`wardmail_metrics_dropped_total`).",
    reason: "labels are bounded sets (listeners, codes, verdicts); the cap is a safety net",
  },
  {
    name: "max_metric_label", value: 100, unit: "characters", file: "src/metrics/registry.ts", constant: "MAX_LABEL",
    doc: "Longest metric label value kept (a longer one is cut).",
    reason: "labels are our own names; the cut is a safety net",
  },
];
