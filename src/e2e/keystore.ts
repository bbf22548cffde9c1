/**
 * The mailbox keys for encrypt-on-store: table `user_keys` in the accounts
 * database (`<dataDir>/accounts.sqlite`, src/accounts), written by `wardmail
 * user key`, read by the delivery agent at every delivery (nothing cached
 * but the parsed form of a key, by its text's hash: an import or removal
 * counts for the next message).
 *
 * Keys belong to accounts. An alias given to `import`, `list` or `remove`
 * stands for its account, and mail to an alias is the account's mail, so it
 * is encrypted too. A key is tied to the account as it was when the key was
 * imported (its creation time): when the account is removed and created
 * again, the old owner's keys no longer apply (and are deleted on the next
 * import or removal for that address). At most MAX_KEYS_PER_ACCOUNT keys.
 */
import { createHash } from "node:crypto";
import type { SQLOutputValue, StatementSync } from "node:sqlite";
import { AccountError, type AccountStore } from "../accounts/index.ts";
import { KeyError, loadStoredKey, parseRecipientKey, type KeyInfo, type KeyKind, type UsableKey } from "./keys.ts";

export const MAX_KEYS_PER_ACCOUNT = 10;
/** Parsed keys kept in memory (by the hash of their text). */
const MAX_CACHED = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS user_keys (
  account TEXT NOT NULL,
  account_created INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  kind TEXT NOT NULL,
  addresses TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  key_created INTEGER NOT NULL,
  expires INTEGER,
  data TEXT NOT NULL,
  imported INTEGER NOT NULL,
  PRIMARY KEY (account, fingerprint)
) WITHOUT ROWID;
`;

export interface StoredKey extends KeyInfo {
  readonly account: string;
  /** When it was imported, ms since the epoch. */
  readonly imported: number;
}

type Row = Record<string, SQLOutputValue>;

function str(v: SQLOutputValue | undefined): string {
  if (typeof v !== "string") throw new Error(`accounts database (user_keys): expected text, found ${typeof v}`);
  return v;
}

function num(v: SQLOutputValue | undefined): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new Error(`accounts database (user_keys): expected a number, found ${typeof v}`);
}

function toStored(r: Row): StoredKey {
  const kind = str(r.kind);
  if (kind !== "pgp" && kind !== "smime") throw new Error(`accounts database (user_keys): unknown key kind ${JSON.stringify(kind)}`);
  return {
    account: str(r.account),
    kind: kind as KeyKind,
    fingerprint: str(r.fingerprint),
    addresses: JSON.parse(str(r.addresses)) as string[],
    algorithm: str(r.algorithm),
    created: num(r.key_created),
    expires: r.expires === null ? null : num(r.expires),
    data: str(r.data),
    imported: num(r.imported),
  };
}

/** A fingerprint as the operator may type it (spaces, colons, lowercase) in canonical form. */
export function normalizeFingerprint(input: string): string {
  const f = input.replace(/[\s:]/g, "").toUpperCase();
  if (!/^[0-9A-F]{16,64}$/.test(f)) throw new KeyError(`not a fingerprint: ${JSON.stringify(input.slice(0, 80))} (16 to 64 hex digits)`);
  return f;
}

export class KeyStore {
  readonly #accounts: AccountStore;
  readonly #cache = new Map<string, Promise<UsableKey>>();
  /** Prepared statements by SQL text (keysFor runs at every delivery). */
  readonly #statements = new Map<string, StatementSync>();

  constructor(accounts: AccountStore) {
    this.#accounts = accounts;
    accounts.db.exec(SCHEMA);
  }

  #prepared(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (st === undefined) {
      st = this.#accounts.db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  /** The account an address (account or alias) stands for, with its creation time and addresses; else an AccountError. */
  #account(address: string): { account: string; created: number; addresses: string[] } {
    const account = this.#accounts.resolve(address);
    const info = account === undefined ? undefined : this.#accounts.get(account);
    if (account === undefined || info === undefined) throw new AccountError(`no such account or alias: ${address.toLowerCase()}`);
    return { account, created: info.created, addresses: [account, ...info.aliases] };
  }

  /** Drops keys left from an earlier account of the same address. */
  #dropStale(account: string, created: number): void {
    this.#accounts.db.prepare("DELETE FROM user_keys WHERE account = ? AND account_created <> ?").run(account, created);
  }

  /**
   * Validates and stores a key for the account of `address` (see keys.ts for
   * what is checked; its addresses must include the account's or one of its
   * aliases'). The same fingerprint again replaces the stored key (new
   * expiry, new user IDs). Returns the stored key and whether it replaced one.
   */
  async import(address: string, file: string | Buffer, now: Date = new Date()): Promise<{ key: StoredKey; replaced: boolean }> {
    const acct = this.#account(address);
    let parsed: UsableKey;
    try {
      parsed = await parseRecipientKey(file, acct.addresses, now);
    } catch (err) {
      // A revoked or expired version of a key we hold: say that the stored one is still used.
      const fp = err instanceof KeyError ? await loadStoredKey(typeof file === "string" ? file : file.toString("latin1")).then((k) => k.info.fingerprint, () => undefined) : undefined;
      if (fp !== undefined && this.list(acct.account).some((k) => k.fingerprint === fp)) {
        throw new KeyError(`${(err as Error).message}; the stored key ${fp} stays in use until you remove it (wardmail user key remove ${acct.account} ${fp})`);
      }
      throw err;
    }
    const info = parsed.info;
    const db = this.#accounts.db;
    db.exec("BEGIN IMMEDIATE");
    try {
      const again = this.#account(address);
      if (again.account !== acct.account || again.created !== acct.created) throw new AccountError(`the account ${acct.account} changed meanwhile; try again`);
      this.#dropStale(acct.account, acct.created);
      const replaced = db.prepare("SELECT 1 AS x FROM user_keys WHERE account = ? AND fingerprint = ?").get(acct.account, info.fingerprint) !== undefined;
      const count = num(db.prepare("SELECT count(*) AS n FROM user_keys WHERE account = ?").get(acct.account)?.n ?? 0);
      if (!replaced && count >= MAX_KEYS_PER_ACCOUNT) throw new KeyError(`${acct.account} has ${MAX_KEYS_PER_ACCOUNT} keys already (the most allowed); remove one first`);
      const imported = now.getTime();
      db.prepare(
        `INSERT OR REPLACE INTO user_keys (account, account_created, fingerprint, kind, addresses, algorithm, key_created, expires, data, imported)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(acct.account, acct.created, info.fingerprint, info.kind, JSON.stringify(info.addresses), info.algorithm, info.created, info.expires, info.data, imported);
      db.exec("COMMIT");
      return { key: { ...info, account: acct.account, imported }, replaced };
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw err;
    }
  }

  /** The keys of one account (address or alias), or of every account. */
  list(address?: string): StoredKey[] {
    const db = this.#accounts.db;
    const join = "FROM user_keys k JOIN accounts a ON a.address = k.account AND a.created = k.account_created";
    if (address === undefined) return db.prepare(`SELECT k.* ${join} ORDER BY k.account, k.imported`).all().map(toStored);
    const acct = this.#account(address);
    return db.prepare(`SELECT k.* ${join} WHERE k.account = ? ORDER BY k.imported`).all(acct.account).map(toStored);
  }

  /** Removes one key (by fingerprint, or its last 16+ hex digits) or, without one, every key of the account. Returns the removed keys. */
  remove(address: string, fingerprint?: string): StoredKey[] {
    const acct = this.#account(address);
    const want = fingerprint === undefined ? undefined : normalizeFingerprint(fingerprint);
    const db = this.#accounts.db;
    db.exec("BEGIN IMMEDIATE");
    try {
      this.#dropStale(acct.account, acct.created);
      const keys = db.prepare("SELECT * FROM user_keys WHERE account = ?").all(acct.account).map(toStored);
      const gone = want === undefined ? keys : keys.filter((k) => k.fingerprint.endsWith(want));
      if (want !== undefined && gone.length > 1) throw new KeyError(`${want} matches ${gone.length} keys of ${acct.account}; give the whole fingerprint`);
      for (const k of gone) db.prepare("DELETE FROM user_keys WHERE account = ? AND fingerprint = ?").run(acct.account, k.fingerprint);
      db.exec("COMMIT");
      return gone;
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw err;
    }
  }

  /** The parsed keys mail to this mailbox is encrypted to (none: stored as it is). A mailbox that is not an account has none. */
  async keysFor(mailbox: string): Promise<UsableKey[]> {
    // Most servers have no keys at all: one index probe instead of resolving the mailbox (read at every delivery, so an import counts at once).
    if (this.#prepared("SELECT EXISTS (SELECT 1 FROM user_keys) AS x").get()?.x !== 1) return [];
    const account = this.#accounts.resolve(mailbox);
    if (account === undefined) return [];
    const rows = this.#prepared("SELECT k.* FROM user_keys k JOIN accounts a ON a.address = k.account AND a.created = k.account_created WHERE k.account = ? ORDER BY k.imported")
      .all(account)
      .map(toStored);
    return Promise.all(rows.map((r) => this.#parsed(r.data)));
  }

  #parsed(data: string): Promise<UsableKey> {
    const id = createHash("sha256").update(data).digest("hex");
    let p = this.#cache.get(id);
    if (p === undefined) {
      if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
      // Checked at import; the caller checks the time (unusableAt), not the addresses (aliases may have changed since).
      p = loadStoredKey(data);
      p.catch(() => this.#cache.delete(id));
      this.#cache.set(id, p);
    }
    return p;
  }
}
