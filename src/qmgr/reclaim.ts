/**
 * Bounds the memory of message contents that delivery is done with.
 *
 * A content kept past two young-generation collections (waiting in the
 * handoff, in flight behind a slow connection) moves to V8's old
 * generation. Once delivered it is garbage, but its bytes live outside the
 * JavaScript heap (an ArrayBuffer backing store), so they barely count
 * toward what starts a full collection: in the outbound bench, 15 to 25 MiB
 * of delivered contents per worker were still resident at the end of a run,
 * about four times what was live. So after every RECLAIM_EVERY_BYTES of
 * content delivered (or given up), the queue manager asks V8 for a major
 * collection, run concurrently (`execution: "async"`): a few milliseconds of
 * CPU per RECLAIM_EVERY_BYTES, against tens of MiB of resident memory.
 *
 * The collector hook is V8's `gc` extension, enabled for this isolate's new
 * contexts with v8.setFlagsFromString and taken from a new vm context; it
 * is not exposed to any other code. Where that is not available the
 * reclaimer does nothing (V8 then collects on its own schedule, as before).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Content bytes delivered between two requested major collections. */
export const RECLAIM_EVERY_BYTES = 8 * 1024 * 1024;

type GcFunction = (options?: { type?: "major" | "minor"; execution?: "sync" | "async" }) => unknown;

let collector: GcFunction | undefined | null = null;

/** V8's collector for this isolate, or undefined where it cannot be had. */
export function majorCollector(): GcFunction | undefined {
  if (collector === null) {
    try {
      setFlagsFromString("--expose-gc");
      const gc: unknown = runInNewContext("gc");
      collector = typeof gc === "function" ? (gc as GcFunction) : undefined;
    } catch {
      collector = undefined;
    }
  }
  return collector;
}

export class ContentReclaimer {
  private pendingBytes = 0;
  private requested = 0;
  private readonly every: number;
  private readonly gc: GcFunction | undefined;

  /** `gc`: the collector to call (tests); null for none; V8's own by default. */
  constructor(every = RECLAIM_EVERY_BYTES, gc?: GcFunction | null) {
    this.every = Math.max(1, every);
    this.gc = gc === null ? undefined : (gc ?? majorCollector());
  }

  /** Delivery no longer holds a content of `bytes` bytes. */
  released(bytes: number): void {
    this.pendingBytes += bytes;
    if (this.pendingBytes < this.every || this.gc === undefined) return;
    this.pendingBytes = 0;
    this.requested++;
    try {
      const r = this.gc({ type: "major", execution: "async" });
      // A promise of the vm context's realm: not `instanceof Promise` here.
      const then = (r as { then?: unknown } | undefined)?.then;
      if (typeof then === "function") (then as (ok: () => void, ko: () => void) => void).call(r, () => undefined, () => undefined);
    } catch {
      // A collection that cannot be requested changes nothing but memory.
    }
  }

  /** Major collections requested so far. */
  get collections(): number {
    return this.requested;
  }
}
