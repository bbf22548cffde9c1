/**
 * The counters and gauges of one thread. Each worker thread (and the
 * primary) has its own registry, `metrics`, written by plain calls from the
 * code that sees the event (a connection accepted, a message accepted or
 * refused, a verdict, a delivery); the primary asks every worker for a
 * snapshot when Prometheus scrapes and adds them up (aggregate.ts).
 *
 * Bounded: label values come from our own code (listener roles, reply
 * codes, verdict names), never raw client input; still, at most MAX_SERIES
 * series are kept per thread, and a new series beyond that is dropped and
 * counted (wardmail_metrics_dropped_total), so memory stays fixed whatever
 * happens.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

export type MetricType = "counter" | "gauge" | "histogram";

/** Every metric Wardmail exposes, with its type and help text. */
export const METRICS: Readonly<Record<string, { readonly type: MetricType; readonly help: string }>> = {
  wardmail_connections_total: { type: "counter", help: "SMTP connections accepted, by listener (smtp, submission, submissions)." },
  wardmail_connections_refused_total: { type: "counter", help: "SMTP connections refused before the greeting, by listener and limit." },
  wardmail_messages_total: { type: "counter", help: "Messages at the end of DATA, by listener, result (accepted, refused) and reply code and enhanced status (the reason)." },
  wardmail_smtp_refusals_total: { type: "counter", help: "MAIL and RCPT commands refused, by listener, command and reply code and enhanced status." },
  wardmail_check_verdicts_total: { type: "counter", help: "Verdicts of the policy checks, by check and verdict (e.g. spf.fail)." },
  wardmail_auth_total: { type: "counter", help: "SMTP AUTH exchanges that ended, by listener and result (ok, failed, blocked, malformed)." },
  wardmail_deliveries_total: { type: "counter", help: "Delivery attempts per recipient, by outcome (delivered, deferred, failed) and destination (local, remote, discard)." },
  wardmail_outbound_sessions_total: { type: "counter", help: "Outbound SMTP sessions, by TLS policy (dane, verify, encrypt, may), its source, the TLS reached (verified, unverified, none) and result (ok, error)." },
  wardmail_delivery_delay_seconds: { type: "histogram", help: "Time from a message's acceptance to its delivery, per recipient delivered, by destination (local, remote)." },
  wardmail_queue_messages: { type: "gauge", help: "Messages in the queue, by state (queued, active, deferred, held, damaged)." },
  wardmail_queue_oldest_seconds: { type: "gauge", help: "Age of the oldest message in the queue, by state (queued, deferred, held); 0 when the state has none." },
  wardmail_event_loop_delay_seconds: { type: "gauge", help: "How late a 10 ms timer fired in each thread since start, by thread (primary, worker N) and stat (p50, p99, max)." },
  wardmail_resident_memory_bytes: { type: "gauge", help: "Resident set size of the Wardmail process (all threads)." },
  wardmail_heap_used_bytes: { type: "gauge", help: "V8 heap in use, by thread." },
  wardmail_workers: { type: "gauge", help: "Worker threads that answered this scrape." },
  wardmail_task_threads_started_total: { type: "counter", help: "Threads the shared task pools started (the verifier threads of DKIM, ARC, DMARC and SPF), by pool." },
  wardmail_task_threads_ended_total: { type: "counter", help: "Threads of the shared task pools ended, by pool and reason (stuck, grace, deadline, shut, worker_gone, idle, crash, closed)." },
  wardmail_task_threads: { type: "gauge", help: "Threads of the shared task pools running now, by pool." },
  wardmail_metrics_dropped_total: { type: "counter", help: "Samples dropped because a thread reached its series limit." },
};

/** Bucket bounds (seconds) of wardmail_delivery_delay_seconds: from a local delivery to a day of retries. */
export const DELIVERY_DELAY_BUCKETS: readonly number[] = [0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 14400, 86400];

/** Series kept per thread. */
export const MAX_SERIES = 5000;
/** Longest label value kept (longer ones are cut). */
const MAX_LABEL = 100;

/** The series key: name and sorted labels. */
export function seriesKey(name: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(",")}}`;
}

export class Registry {
  readonly #series = new Map<string, { name: string; labels: Labels; value: number }>();
  #dropped = 0;

  #slot(name: string, labels: Labels): { value: number } | undefined {
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) clean[k] = v.length > MAX_LABEL ? v.slice(0, MAX_LABEL) : v;
    const key = seriesKey(name, clean);
    let s = this.#series.get(key);
    if (s === undefined) {
      if (this.#series.size >= MAX_SERIES) {
        this.#dropped++;
        return undefined;
      }
      s = { name, labels: clean, value: 0 };
      this.#series.set(key, s);
    }
    return s;
  }

  /** Adds n (default 1) to a counter. */
  inc(name: string, labels: Labels = {}, n = 1): void {
    const s = this.#slot(name, labels);
    if (s) s.value += n;
  }

  /**
   * One observation of a histogram: its _bucket counters (le = each bound
   * the value is within, and +Inf), _sum and _count.
   */
  observe(name: string, labels: Labels, value: number, buckets: readonly number[]): void {
    for (const b of buckets) if (value <= b) this.inc(`${name}_bucket`, { ...labels, le: String(b) });
    this.inc(`${name}_bucket`, { ...labels, le: "+Inf" });
    this.inc(`${name}_sum`, labels, value);
    this.inc(`${name}_count`, labels);
  }

  /**
   * A counter series bound once, for hot paths: `inc` adds without building
   * the series key again. The series is made at the first `inc` (counted
   * against MAX_SERIES like any other; dropped and counted when over it).
   */
  counter(name: string, labels: Labels = {}): { inc(n?: number): void } {
    let slot: { value: number } | undefined;
    return {
      inc: (n = 1) => {
        slot ??= this.#slot(name, labels);
        if (slot) slot.value += n;
      },
    };
  }

  /** A histogram series bound once (see observe and counter): `observe` without building the series keys again. */
  histogram(name: string, labels: Labels, buckets: readonly number[]): { observe(value: number): void } {
    const bucket = buckets.map((b) => this.counter(`${name}_bucket`, { ...labels, le: String(b) }));
    const inf = this.counter(`${name}_bucket`, { ...labels, le: "+Inf" });
    const sum = this.counter(`${name}_sum`, labels);
    const count = this.counter(`${name}_count`, labels);
    return {
      observe: (value: number) => {
        for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]!) bucket[i]!.inc();
        inf.inc();
        sum.inc(value);
        count.inc();
      },
    };
  }

  /** Sets a gauge. */
  set(name: string, labels: Labels, value: number): void {
    const s = this.#slot(name, labels);
    if (s) s.value = value;
  }

  snapshot(): Sample[] {
    const out: Sample[] = [...this.#series.values()].map((s) => ({ name: s.name, labels: s.labels, value: s.value }));
    if (this.#dropped > 0) out.push({ name: "wardmail_metrics_dropped_total", labels: {}, value: this.#dropped });
    return out;
  }
}

/** This thread's registry. */
export const metrics = new Registry();
