/**
 * The compromised-account hold in `wardmail user` (src/spam/hold.ts):
 * `list` and `show` say "held since ... because ...", `release ADDRESS`
 * ends the hold and releases the account's held messages from the queue
 * (those it submitted: received.auth is the account).
 */
import type { Config } from "../config/index.ts";
import type { AccountInfo, AccountStore } from "../accounts/index.ts";
import { QueueAdmin } from "../queue/index.ts";
import { AccountHold, type Hold } from "../spam/index.ts";

export function holdsOf(store: AccountStore, config: Config): AccountHold {
  return new AccountHold(store.db, config.accountHold);
}

/** "held since 2026-12-07T08:00:00.000Z because ..." */
export function heldText(h: Hold): string {
  return `held since ${new Date(h.since).toISOString()} because ${h.reason}`;
}

/** `user show ADDRESS`: one account, every fact on its own line. */
export function showText(a: AccountInfo, h: Hold | undefined): string {
  const lines = [
    `account: ${a.address}`,
    `created: ${new Date(a.created).toISOString()}`,
    `login: ${a.disabled ? "disabled" : "enabled"}`,
    `sending: ${h ? heldText(h) : "not held"}`,
    `aliases: ${a.aliases.join(", ") || "none"}`,
    `senders: ${a.senders.join(", ") || "none"}`,
    `app passwords: ${a.appPasswords.map((x) => x.name).join(", ") || "none"}`,
  ];
  return lines.map((l) => `${l}\n`).join("");
}

/**
 * `user release ADDRESS`: ends the hold (if any) and releases the account's
 * held messages; returns the hold that ended and the released queue ids.
 */
export function releaseAccount(holds: AccountHold, dataDir: string, account: string): { hold: Hold | undefined; released: string[] } {
  const hold = holds.held(account);
  holds.release(account);
  const admin = QueueAdmin.open(dataDir);
  const released: string[] = [];
  try {
    for (const e of admin.list()) {
      if (e.state === "held" && e.received.auth?.toLowerCase() === account.toLowerCase() && admin.release(e.id)) released.push(e.id);
    }
  } finally {
    admin.close();
  }
  return { hold, released };
}
