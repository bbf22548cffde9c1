/**
 * The content rate of one connection (limits.min_data_rate, data_timeout):
 * content must come at min_data_rate on average. A budget of time, at most
 * data_timeout (cut to stress_timeout under pressure), is spent by time and
 * refilled by bytes (1/min_data_rate s each); when it runs out the
 * connection is told (src/server/connection.ts answers with the core's
 * timeout).
 *
 * One timer serves many reads: it is re-armed only when the deadline comes
 * earlier than it fires (a cap cut under pressure); a later deadline is
 * found when it fires.
 */
export class ContentRate {
  private readonly minDataRate: number;
  /** Still receiving content (the timer's firing is ignored otherwise). */
  private readonly running: () => boolean;
  /** The budget ran out while content was still coming. */
  private readonly expired: () => void;
  private budgetMs = 0;
  private at = 0;
  private deadline = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;

  constructor(minDataRate: number, running: () => boolean, expired: () => void) {
    this.minDataRate = minDataRate;
    this.running = running;
    this.expired = expired;
  }

  /** Content starts: a full budget of budgetMs from now. */
  start(budgetMs: number, now: number): void {
    this.budgetMs = budgetMs;
    this.at = now;
    this.arm();
  }

  /** bytes came at `now`: time since the last read spends the budget, the bytes refill it, up to capMs. */
  spend(now: number, bytes: number, capMs: number): void {
    this.budgetMs = Math.min(capMs, this.budgetMs - (now - this.at) + (bytes * 1000) / this.minDataRate);
    this.at = now;
    this.arm();
  }

  /** Content ended (or the connection did): no timer left. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The budget runs out at at + budgetMs. */
  private arm(): void {
    this.deadline = this.at + Math.max(0, this.budgetMs);
    if (this.timer !== undefined && this.timerAt <= this.deadline) return;
    clearTimeout(this.timer);
    this.set(Date.now());
  }

  private set(now: number): void {
    this.timerAt = this.deadline;
    this.timer = setTimeout(() => this.fired(), Math.max(0, this.deadline - now));
  }

  private fired(): void {
    this.timer = undefined;
    // The content is complete (its question may be open): the rate no longer applies.
    if (!this.running()) return;
    const now = Date.now();
    if (now < this.deadline) {
      this.set(now);
      return;
    }
    this.expired();
  }
}
