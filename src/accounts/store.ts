/**
 * The account store: who may log in (SMTP AUTH), as which addresses they may
 * send, and their aliases. One SQLite file, `<dataDir>/accounts.sqlite`,
 * written by the `wardmail user` command and read by the running server.
 *
 * What is kept per account: an argon2id PHC hash of the password (for PLAIN
 * and LOGIN) and the SCRAM-SHA-256 StoredKey/ServerKey with their salt and
 * iteration count (for SCRAM), both computed from the password when it is
 * set; the password itself is never stored. App passwords are random secrets
 * generated here and shown once; they are kept as SHA-256 (they carry 82 bits
 * of entropy, so a slow hash adds nothing) plus SCRAM keys derived with the
 * ACCOUNT's salt and count, since SCRAM offers the client one salt per user.
 * Hence changing the account password (new salt) revokes every app password:
 * their keys cannot be re-derived from a hash.
 *
 * Nothing is cached between calls: every read goes to the file, so a change
 * the CLI makes is seen by the server at its next lookup. SQLite in WAL mode
 * lets the two processes share the file (readers never block the writer;
 * a writer waits up to the busy timeout for the other's short transaction).
 * The schema version is kept in `PRAGMA user_version`; a file written by a
 * newer Wardmail is refused. Other modules may add their own tables to the
 * same file through `db` (they must not use user_version).
 *
 * Addresses are lowercased and validated strictly (see normalizeAddress):
 * what an operator can create here is a plain dot-atom, never something a
 * relay could reinterpret (%, !, quotes, source routes, address literals).
 */
import type { DatabaseSync, StatementSync, SQLOutputValue } from "node:sqlite";
import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { dummyHash, hashPassword, verifyPassword } from "../auth/index.ts";
import { deriveScramKeys, newScramSalt, SCRAM_ITERATIONS, type ScramKeys } from "../auth/index.ts";
import { openDatabase, writeTransaction } from "../storage/index.ts";
import type { CredentialStore, ScramCredentials } from "../auth/index.ts";

export const SCHEMA_VERSION = 1;
export const ACCOUNTS_FILE = "accounts.sqlite";
export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_BYTES = 1024;
/** App passwords per account: each one is a key pair SCRAM tries and a hash PLAIN compares. */
export const MAX_APP_PASSWORDS = 50;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS accounts (
  address TEXT PRIMARY KEY NOT NULL,
  password TEXT NOT NULL,
  scram_salt BLOB NOT NULL,
  scram_iterations INTEGER NOT NULL,
  scram_stored_key BLOB NOT NULL,
  scram_server_key BLOB NOT NULL,
  created INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS app_passwords (
  account TEXT NOT NULL,
  name TEXT NOT NULL COLLATE NOCASE,
  secret_sha256 BLOB NOT NULL,
  scram_stored_key BLOB NOT NULL,
  scram_server_key BLOB NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (account, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
  alias TEXT PRIMARY KEY NOT NULL,
  account TEXT NOT NULL,
  created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_account ON aliases (account);
CREATE TABLE IF NOT EXISTS senders (
  account TEXT NOT NULL,
  address TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (account, address)
) WITHOUT ROWID;
`;

/** A refusal to show the operator as is: "account exists", "not a local domain", ... */
export class AccountError extends Error {
  override name = "AccountError";
}

export interface AccountInfo {
  address: string;
  created: number;
  /** A disabled account cannot log in; mail to it and its aliases is unaffected. */
  disabled: boolean;
  aliases: string[];
  /** Exact addresses and "@domain" entries this account may also send as. */
  senders: string[];
  appPasswords: { name: string; created: number }[];
}

export interface AccountStoreOptions {
  /** Create the directory (0700) and the file (0600) when missing. Without it a missing file is an error. */
  readonly create: boolean;
  /** The domains accounts and aliases must be in (config.local.domains). */
  readonly localDomains: readonly string[];
  /** Busy timeout in ms (default 5000). */
  readonly busyTimeoutMs?: number;
}

// ------------------------------------------------------------ validation

const LOCAL_PART = /^[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function shown(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
}

function domainProblem(domain: string): string | undefined {
  if (domain.length === 0) return "empty domain";
  if (domain.length > 253) return "domain longer than 253 characters";
  const labels = domain.split(".");
  if (!labels.every((l) => LABEL.test(l))) return "the domain must be labels of letters, digits and hyphens separated by single dots (no trailing dot, no address literal)";
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return "the domain must not end in a numeric label";
  return undefined;
}

/** Why `input` is not an address we accept, or undefined. Expects lowercase ASCII. */
function addressProblem(a: string): string | undefined {
  if (!/^[\x21-\x7e]+$/.test(a)) return "only printable ASCII, no spaces";
  const at = a.indexOf("@");
  if (at < 0) return "missing @";
  if (at !== a.lastIndexOf("@")) return "more than one @";
  const local = a.slice(0, at);
  const domain = a.slice(at + 1);
  if (local.length === 0) return "empty local part";
  if (local.length > 64) return "local part longer than 64 characters";
  if (!LOCAL_PART.test(local)) return "the local part may hold letters, digits and . _ + - only, with no leading, trailing or double dot";
  if (a.length > 254) return "longer than 254 characters";
  return domainProblem(domain);
}

/** The address lowercased, or an AccountError saying what is wrong with it. */
export function normalizeAddress(input: string): string {
  const a = /^[\x21-\x7e]*$/.test(input) ? input.toLowerCase() : input;
  const problem = addressProblem(a);
  if (problem) throw new AccountError(`not a valid address: ${shown(input)} (${problem})`);
  return a;
}

/** A sender entry: an exact address or "@domain" (any address in that domain), lowercased. */
export function normalizeSender(input: string): string {
  if (input.startsWith("@")) {
    const d = /^[\x21-\x7e]*$/.test(input) ? input.slice(1).toLowerCase() : "\u0000";
    const problem = domainProblem(d);
    if (problem) throw new AccountError(`not a valid sender domain: ${shown(input)} (${problem})`);
    return "@" + d;
  }
  return normalizeAddress(input);
}

/** Throws an AccountError when the password breaks the rules. */
export function checkNewPassword(password: string): void {
  if ([...password].length < MIN_PASSWORD_CHARS) throw new AccountError(`password too short (at least ${MIN_PASSWORD_CHARS} characters)`);
  if (Buffer.byteLength(password, "utf8") > MAX_PASSWORD_BYTES) throw new AccountError(`password too long (at most ${MAX_PASSWORD_BYTES} bytes)`);
  if (/[\0\r\n]/.test(password)) throw new AccountError("password must not contain NUL, CR or LF");
}

const APP_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9 ._+:@()-]{0,62}[A-Za-z0-9._+:@()-])?$/;

function checkAppName(name: string): void {
  if (!APP_NAME.test(name)) {
    throw new AccountError(`not a valid app password name: ${shown(name)} (1 to 64 letters, digits, spaces and . _ + : @ ( ) -, starting with a letter or digit)`);
  }
}

const SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** 4 groups of 4 lowercase letters or digits: 36^16, about 82.7 bits. */
export function generateAppSecret(): string {
  const groups: string[] = [];
  for (let g = 0; g < 4; g++) {
    let s = "";
    for (let i = 0; i < 4; i++) s += SECRET_ALPHABET[randomInt(SECRET_ALPHABET.length)];
    groups.push(s);
  }
  return groups.join("-");
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

// ------------------------------------------------------------ row helpers

type Row = Record<string, SQLOutputValue>;

function str(v: SQLOutputValue | undefined): string {
  if (typeof v !== "string") throw new Error(`accounts database: expected text, found ${typeof v}`);
  return v;
}

function num(v: SQLOutputValue | undefined): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new Error(`accounts database: expected a number, found ${typeof v}`);
}

function buf(v: SQLOutputValue | undefined): Buffer {
  if (!(v instanceof Uint8Array)) throw new Error(`accounts database: expected a blob, found ${typeof v}`);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

interface LoginRow {
  address: string;
  password: string;
  salt: Buffer;
  iterations: number;
  keys: ScramKeys;
}

const LOGIN_COLUMNS = "a.address, a.password, a.scram_salt, a.scram_iterations, a.scram_stored_key, a.scram_server_key";

// ------------------------------------------------------------ the store

export class AccountStore implements CredentialStore {
  /** The open database; other modules may keep their own tables in it. */
  readonly db: DatabaseSync;
  readonly path: string;
  readonly #localDomains: ReadonlySet<string>;

  private constructor(db: DatabaseSync, path: string, localDomains: readonly string[]) {
    this.db = db;
    this.path = path;
    this.#localDomains = new Set(localDomains.map((d) => d.toLowerCase().replace(/\.$/, "")));
  }

  /** Path of the accounts database in a data directory. */
  static path(dataDir: string): string {
    return join(dataDir, ACCOUNTS_FILE);
  }

  /** True when the data directory has an accounts database (no file: no accounts). */
  static exists(dataDir: string): boolean {
    return existsSync(AccountStore.path(dataDir));
  }

  /** Opens (with create: true, creates) `<dataDir>/accounts.sqlite`. */
  static open(dataDir: string, opts: AccountStoreOptions): AccountStore {
    const path = AccountStore.path(dataDir);
    // Password hashes: the file is created 0600.
    const db = openDatabase(path, {
      create: opts.create,
      what: "accounts database",
      schema: SCHEMA,
      version: SCHEMA_VERSION,
      // Old password hashes must not linger in freed pages.
      pragmas: ["synchronous = FULL", "secure_delete = ON"],
      ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}),
      foreignKeys: false,
    });
    return new AccountStore(db, path, opts.localDomains);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  /** Runs fn in a write transaction (BEGIN IMMEDIATE: checks and writes see one state). */
  #tx<T>(fn: () => T): T {
    return writeTransaction(this.db, fn);
  }


  /** Prepared statements by SQL text: preparing on every lookup cost ~6 % of a worker's CPU. */
  readonly #statements = new Map<string, StatementSync>();

  #prepared(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  #get(sql: string, ...params: (string | number)[]): Row | undefined {
    return this.#prepared(sql).get(...params);
  }

  #all(sql: string, ...params: (string | number)[]): Row[] {
    return this.#prepared(sql).all(...params);
  }

  #run(sql: string, ...params: (string | number | Buffer)[]): number {
    return Number(this.#prepared(sql).run(...params).changes);
  }

  #requireLocal(address: string, what: string): void {
    const domain = address.slice(address.indexOf("@") + 1);
    if (!this.#localDomains.has(domain)) throw new AccountError(`${what} ${address} is not in a local domain (add it to [local] domains)`);
  }

  #isAccount(address: string): boolean {
    return this.#get("SELECT 1 AS x FROM accounts WHERE address = ?", address) !== undefined;
  }

  #aliasTarget(alias: string): string | undefined {
    const r = this.#get("SELECT account FROM aliases WHERE alias = ?", alias);
    return r === undefined ? undefined : str(r.account);
  }

  /** The normalised address of an existing account, else an AccountError (saying so when it is an alias). */
  requireAccount(input: string): string {
    const a = normalizeAddress(input);
    if (this.#isAccount(a)) return a;
    const target = this.#aliasTarget(a);
    throw new AccountError(target === undefined ? `no such account: ${a}` : `${a} is an alias of ${target}, not an account`);
  }

  /** Refuses an address already taken by an account or an alias. */
  #requireFree(a: string): void {
    if (this.#isAccount(a)) throw new AccountError(`account ${a} exists already`);
    const target = this.#aliasTarget(a);
    if (target !== undefined) throw new AccountError(`${a} is already an alias of ${target}`);
  }

  // -------------------------------------------------------- accounts

  /** The normalised address when `address` could become a new account (valid, in a local domain, not taken), else an AccountError. */
  checkNewAccount(address: string): string {
    const a = normalizeAddress(address);
    this.#requireLocal(a, "account");
    this.#requireFree(a);
    return a;
  }

  /** Creates an account. The password is hashed (argon2id) and turned into SCRAM keys; it is not stored. */
  async addAccount(address: string, password: string): Promise<void> {
    const a = this.checkNewAccount(address); // early, before ~100 ms of hashing
    checkNewPassword(password);
    const salt = newScramSalt();
    const [phc, keys] = await Promise.all([hashPassword(password), deriveScramKeys(password, salt, SCRAM_ITERATIONS)]);
    this.#tx(() => {
      this.#requireFree(a);
      this.#run(
        "INSERT INTO accounts (address, password, scram_salt, scram_iterations, scram_stored_key, scram_server_key, created, disabled) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        a, phc, salt, SCRAM_ITERATIONS, keys.storedKey, keys.serverKey, Date.now(),
      );
    });
  }

  /**
   * Sets a new password (and a new SCRAM salt). The account's app passwords
   * are revoked (deleted): their SCRAM keys were derived with the old salt
   * and cannot be re-derived, since only their hash is kept. Returns the
   * names of the revoked app passwords.
   */
  async setPassword(address: string, password: string): Promise<string[]> {
    const a = this.requireAccount(address);
    checkNewPassword(password);
    const salt = newScramSalt();
    const [phc, keys] = await Promise.all([hashPassword(password), deriveScramKeys(password, salt, SCRAM_ITERATIONS)]);
    return this.#tx(() => {
      const changed = this.#run(
        "UPDATE accounts SET password = ?, scram_salt = ?, scram_iterations = ?, scram_stored_key = ?, scram_server_key = ? WHERE address = ?",
        phc, salt, SCRAM_ITERATIONS, keys.storedKey, keys.serverKey, a,
      );
      if (changed === 0) throw new AccountError(`no such account: ${a}`);
      const names = this.#all("SELECT name FROM app_passwords WHERE account = ? ORDER BY created, name", a).map((r) => str(r.name));
      this.#run("DELETE FROM app_passwords WHERE account = ?", a);
      return names;
    });
  }

  /** A disabled account cannot log in (checkPassword, scramCredentials); its mail is unaffected. False when there is no such account. */
  setDisabled(address: string, disabled: boolean): boolean {
    const a = normalizeAddress(address);
    return this.#run("UPDATE accounts SET disabled = ? WHERE address = ?", disabled ? 1 : 0, a) > 0;
  }

  /** Removes an account with its aliases, senders and app passwords. False when there is no such account. */
  removeAccount(address: string): boolean {
    const a = normalizeAddress(address);
    return this.#tx(() => {
      if (this.#run("DELETE FROM accounts WHERE address = ?", a) === 0) return false;
      this.#run("DELETE FROM aliases WHERE account = ?", a);
      this.#run("DELETE FROM senders WHERE account = ?", a);
      this.#run("DELETE FROM app_passwords WHERE account = ?", a);
      return true;
    });
  }

  /** Every account, by address. */
  list(): AccountInfo[] {
    const byAccount = new Map<string, AccountInfo>();
    for (const r of this.#all("SELECT address, created, disabled FROM accounts ORDER BY address")) {
      const address = str(r.address);
      byAccount.set(address, { address, created: num(r.created), disabled: num(r.disabled) !== 0, aliases: [], senders: [], appPasswords: [] });
    }
    for (const r of this.#all("SELECT alias, account FROM aliases ORDER BY alias")) byAccount.get(str(r.account))?.aliases.push(str(r.alias));
    for (const r of this.#all("SELECT account, address FROM senders ORDER BY address")) byAccount.get(str(r.account))?.senders.push(str(r.address));
    for (const r of this.#all("SELECT account, name, created FROM app_passwords ORDER BY created, name")) {
      byAccount.get(str(r.account))?.appPasswords.push({ name: str(r.name), created: num(r.created) });
    }
    return [...byAccount.values()];
  }

  /** One account by its address (not an alias), or undefined. */
  get(address: string): AccountInfo | undefined {
    let a: string;
    try {
      a = normalizeAddress(address);
    } catch {
      return undefined;
    }
    const r = this.#get("SELECT address, created, disabled FROM accounts WHERE address = ?", a);
    if (!r) return undefined;
    return {
      address: a,
      created: num(r.created),
      disabled: num(r.disabled) !== 0,
      aliases: this.#all("SELECT alias FROM aliases WHERE account = ? ORDER BY alias", a).map((x) => str(x.alias)),
      senders: this.#all("SELECT address FROM senders WHERE account = ? ORDER BY address", a).map((x) => str(x.address)),
      appPasswords: this.#all("SELECT name, created FROM app_passwords WHERE account = ? ORDER BY created, name", a).map((x) => ({
        name: str(x.name),
        created: num(x.created),
      })),
    };
  }

  // -------------------------------------------------------- aliases

  /** Makes `alias` (in a local domain, not an account) another address of `account`. */
  addAlias(alias: string, account: string): void {
    const al = normalizeAddress(alias);
    this.#requireLocal(al, "alias");
    this.#tx(() => {
      const acct = this.requireAccount(account);
      this.#requireFree(al);
      this.#run("INSERT INTO aliases (alias, account, created) VALUES (?, ?, ?)", al, acct, Date.now());
    });
  }

  /** False when there is no such alias. */
  removeAlias(alias: string): boolean {
    return this.#run("DELETE FROM aliases WHERE alias = ?", normalizeAddress(alias)) > 0;
  }

  // -------------------------------------------------------- senders

  /** Lets `account` send as `address` (exact, any domain) or as any address of "@domain". */
  addSender(account: string, address: string): void {
    const s = normalizeSender(address);
    this.#tx(() => {
      const acct = this.requireAccount(account);
      if (this.#get("SELECT 1 AS x FROM senders WHERE account = ? AND address = ?", acct, s)) throw new AccountError(`${acct} may already send as ${s}`);
      this.#run("INSERT INTO senders (account, address, created) VALUES (?, ?, ?)", acct, s, Date.now());
    });
  }

  /** False when the entry is not listed. */
  removeSender(account: string, address: string): boolean {
    return this.#run("DELETE FROM senders WHERE account = ? AND address = ?", normalizeAddress(account), normalizeSender(address)) > 0;
  }

  // -------------------------------------------------------- app passwords

  /**
   * Generates an app password for `account` and returns it: this is the only
   * time it can be seen. Kept as SHA-256 and SCRAM keys (with the account's
   * salt and count).
   */
  async addAppPassword(account: string, name: string): Promise<string> {
    checkAppName(name);
    const acct = this.requireAccount(account);
    const row = this.#get("SELECT scram_salt, scram_iterations FROM accounts WHERE address = ?", acct);
    if (!row) throw new AccountError(`no such account: ${acct}`);
    const salt = buf(row.scram_salt);
    const iterations = num(row.scram_iterations);
    const secret = generateAppSecret();
    const keys = await deriveScramKeys(secret, salt, iterations);
    this.#tx(() => {
      const now = this.#get("SELECT scram_salt, scram_iterations FROM accounts WHERE address = ?", acct);
      if (!now) throw new AccountError(`no such account: ${acct}`);
      // The password was changed while we derived the keys: they would not match the new salt.
      if (!buf(now.scram_salt).equals(salt) || num(now.scram_iterations) !== iterations) throw new AccountError(`the password of ${acct} changed meanwhile; try again`);
      if (this.#get("SELECT 1 AS x FROM app_passwords WHERE account = ? AND name = ?", acct, name)) throw new AccountError(`${acct} has an app password named ${shown(name)} already`);
      const count = num(this.#get("SELECT count(*) AS n FROM app_passwords WHERE account = ?", acct)?.n ?? 0);
      if (count >= MAX_APP_PASSWORDS) throw new AccountError(`${acct} has ${MAX_APP_PASSWORDS} app passwords already (the most allowed)`);
      this.#run(
        "INSERT INTO app_passwords (account, name, secret_sha256, scram_stored_key, scram_server_key, created) VALUES (?, ?, ?, ?, ?, ?)",
        acct, name, sha256(secret), keys.storedKey, keys.serverKey, Date.now(),
      );
    });
    return secret;
  }

  /** False when the account has no app password of that name (names compare case-insensitively). */
  removeAppPassword(account: string, name: string): boolean {
    return this.#run("DELETE FROM app_passwords WHERE account = ? AND name = ?", normalizeAddress(account), name) > 0;
  }

  // -------------------------------------------------------- lookups

  /** Canonical account address for an address that is an account or an alias (case-insensitive), else undefined. */
  resolve(addressOrAlias: string): string | undefined {
    let a: string;
    try {
      a = normalizeAddress(addressOrAlias);
    } catch {
      return undefined;
    }
    if (this.#isAccount(a)) return a;
    // An alias whose account is gone resolves to nothing (removeAccount deletes them anyway).
    const r = this.#get("SELECT l.account FROM aliases l JOIN accounts a ON a.address = l.account WHERE l.alias = ?", a);
    return r === undefined ? undefined : str(r.account);
  }

  /** True when `account` may send as `address`: its own address, one of its aliases, or a listed sender (exact or "@domain"). Case-insensitive. */
  maySendAs(account: string, address: string): boolean {
    let acct: string;
    let addr: string;
    try {
      acct = normalizeAddress(account);
      addr = normalizeAddress(address);
    } catch {
      return false;
    }
    const domain = addr.slice(addr.indexOf("@"));
    const r = this.#get(
      `SELECT 1 AS x FROM accounts WHERE address = ?1 AND (
         ?1 = ?2
         OR EXISTS (SELECT 1 FROM aliases WHERE alias = ?2 AND account = ?1)
         OR EXISTS (SELECT 1 FROM senders WHERE account = ?1 AND address IN (?2, ?3)))`,
      acct, addr, domain,
    );
    return r !== undefined;
  }

  /** The enabled account `username` names (its address or an alias), with its secrets. */
  #loginRow(username: string): LoginRow | undefined {
    let u: string;
    try {
      u = normalizeAddress(username);
    } catch {
      return undefined;
    }
    const r = this.#get(
      `SELECT ${LOGIN_COLUMNS} FROM accounts a WHERE a.address = ?1 AND a.disabled = 0
       UNION ALL
       SELECT ${LOGIN_COLUMNS} FROM aliases l JOIN accounts a ON a.address = l.account WHERE l.alias = ?1 AND a.disabled = 0
       LIMIT 1`,
      u,
    );
    if (!r) return undefined;
    return {
      address: str(r.address),
      password: str(r.password),
      salt: buf(r.scram_salt),
      iterations: num(r.scram_iterations),
      keys: { storedKey: buf(r.scram_stored_key), serverKey: buf(r.scram_server_key) },
    };
  }

  // -------------------------------------------------------- CredentialStore

  async checkPassword(username: string, password: string): Promise<string | undefined> {
    const row = this.#loginRow(username);
    const tooLong = Buffer.byteLength(password, "utf8") > MAX_PASSWORD_BYTES;
    if (!row || tooLong) {
      // Same cost as a real check, so the time does not tell which was wrong.
      await verifyPassword(await dummyHash(), tooLong ? "" : password);
      return undefined;
    }
    const digest = sha256(password);
    let app = false;
    for (const r of this.#all("SELECT secret_sha256 FROM app_passwords WHERE account = ?", row.address)) {
      const h = buf(r.secret_sha256);
      if (h.length === digest.length && timingSafeEqual(h, digest)) app = true;
    }
    if (app) return row.address;
    if (!(await verifyPassword(row.password, password))) return undefined;
    // Removed, disabled or given a new password during the ~100 ms check: the old password no longer counts.
    const now = this.#get("SELECT password FROM accounts WHERE address = ? AND disabled = 0", row.address);
    return now !== undefined && str(now.password) === row.password ? row.address : undefined;
  }

  scramCredentials(username: string): ScramCredentials | undefined {
    const row = this.#loginRow(username);
    if (!row) return undefined;
    const apps = this.#all("SELECT scram_stored_key, scram_server_key FROM app_passwords WHERE account = ? ORDER BY created, name", row.address).map(
      (r): ScramKeys => ({ storedKey: buf(r.scram_stored_key), serverKey: buf(r.scram_server_key) }),
    );
    return { account: row.address, salt: row.salt, iterations: row.iterations, keys: [row.keys, ...apps] };
  }
}
