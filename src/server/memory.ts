/**
 * The process memory budget (limits.memory_budget): the resident set of the
 * whole process (every thread shares it), read from the kernel at the moment
 * a new connection or a new transaction starts. At or above the budget the
 * server takes nothing new on (421 4.3.2 at connect, 451 4.3.1 at MAIL)
 * instead of growing; what is under way goes on, and mail already accepted
 * is never dropped.
 */
import { reply } from "../protocol/reply.ts";

/** The reply to MAIL while the process is at or above its memory budget. */
export const MEMORY_BUSY_MAIL = reply(451, "4.3.1", "Insufficient system resources, try again later");
/** The greeting instead of 220 while the process is at or above its memory budget. */
export const MEMORY_BUSY_CONNECT = reply(421, "4.3.2", "Server busy, try again later");

/** True when the process's resident set is at or above `budget` bytes. */
export function overMemoryBudget(budget: number, rss: () => number = () => process.memoryUsage.rss()): boolean {
  return rss() >= budget;
}
