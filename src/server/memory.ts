/**
 * The process memory budget (limits.memory_budget): the resident set of the
 * whole process (every thread shares it), read from the kernel when a new
 * connection or a new transaction starts, at most once per RSS_TTL_MS per
 * thread (each read is an open/read/close of /proc/self/stat, which under
 * load cost as much as the rest of accepting a connection). At or above the
 * budget the server takes nothing new on (421 4.3.2 at connect, 451 4.3.1
 * at MAIL) instead of growing; what is under way goes on, and mail already
 * accepted is never dropped.
 */
import { reply } from "../protocol/index.ts";

/** The reply to MAIL while the process is at or above its memory budget. */
export const MEMORY_BUSY_MAIL = reply(451, "4.3.1", "Insufficient system resources, try again later");
/** The greeting instead of 220 while the process is at or above its memory budget. */
export const MEMORY_BUSY_CONNECT = reply(421, "4.3.2", "Server busy, try again later");

/** How long one reading of the resident set is used (ms). */
export const RSS_TTL_MS = 50;

let rssValue = 0;
let rssAt = -Infinity;

/**
 * The process's resident set in bytes, read again when the last reading is
 * older than `ttlMs` (`now` and `read` are for tests).
 */
export function residentSet(ttlMs = RSS_TTL_MS, now: number = performance.now(), read: () => number = () => process.memoryUsage.rss()): number {
  if (now - rssAt >= ttlMs || now < rssAt) {
    rssValue = read();
    rssAt = now;
  }
  return rssValue;
}

/** True when the process's resident set is at or above `budget` bytes. */
export function overMemoryBudget(budget: number, rss: () => number = () => residentSet()): boolean {
  return rss() >= budget;
}
