/**
 * The MTA-STS policy cache on disk (RFC 8461 §5: a cached policy must
 * survive restarts, or an attacker who blocks the policy fetch right after
 * a restart downgrades delivery). One SQLite file for the server,
 * `<dataDir>/mta-sts.sqlite`, shared by every worker (WAL, busy timeout).
 * Rows are checked when read: a damaged row is ignored (a fresh fetch
 * replaces it), never trusted.
 */
import { join } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openDatabase } from "../storage/index.ts";
import type { MtaStsPolicy, MtaStsStore, StoredStsPolicy } from "./mta-sts.ts";

const SCHEMA = `CREATE TABLE IF NOT EXISTS policies (domain TEXT PRIMARY KEY, policy TEXT NOT NULL, fetched_at INTEGER NOT NULL)`;

export class SqliteMtaStsStore implements MtaStsStore {
  private readonly db: DatabaseSync;
  private readonly getStmt: StatementSync;
  private readonly setStmt: StatementSync;

  private constructor(db: DatabaseSync) {
    this.db = db;
    this.getStmt = db.prepare("SELECT policy, fetched_at FROM policies WHERE domain = ?");
    this.setStmt = db.prepare("INSERT INTO policies (domain, policy, fetched_at) VALUES (?, ?, ?) ON CONFLICT(domain) DO UPDATE SET policy = excluded.policy, fetched_at = excluded.fetched_at");
  }

  static path(dataDir: string): string {
    return join(dataDir, "mta-sts.sqlite");
  }

  static open(dataDir: string): SqliteMtaStsStore {
    const path = SqliteMtaStsStore.path(dataDir);
    return new SqliteMtaStsStore(openDatabase(path, { create: true, what: "MTA-STS cache", schema: SCHEMA, version: 1, pragmas: ["synchronous = NORMAL"] }));
  }

  get(domain: string): StoredStsPolicy | undefined {
    const row = this.getStmt.get(domain) as { policy: string; fetched_at: number } | undefined;
    if (!row) return undefined;
    try {
      const p = JSON.parse(row.policy) as Partial<MtaStsPolicy>;
      if ((p.mode !== "enforce" && p.mode !== "testing" && p.mode !== "none") || !Array.isArray(p.mx) || !p.mx.every((m) => typeof m === "string") || typeof p.maxAge !== "number" || typeof p.id !== "string") return undefined;
      return { policy: { mode: p.mode, mx: p.mx, maxAge: p.maxAge, id: p.id }, fetchedAt: Number(row.fetched_at) };
    } catch {
      return undefined;
    }
  }

  set(domain: string, policy: MtaStsPolicy, fetchedAt: number): void {
    this.setStmt.run(domain, JSON.stringify({ mode: policy.mode, mx: policy.mx, maxAge: policy.maxAge, id: policy.id }), fetchedAt);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
