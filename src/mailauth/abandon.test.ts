// A verification past its deadline while its thread only waits for DNS (a name server that never
// answers) is abandoned in the thread (src/threads task.ts): its questions fail at once there, and
// the thread and the other verifications in it go on. Real verifier threads (thread.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { VerifierPool } from "./offload.ts";
import { PoolHost, PoolLink } from "../threads/index.ts";

const task = { mailFrom: "a@example.org", clientIp: "192.0.2.1", helo: "client.example", authservId: "mx.example.test", spf: false as const };
const notFound = (): Error => Object.assign(new Error("not found"), { code: "ENOTFOUND" });
const signed = (domain: string): Buffer => Buffer.from(`DKIM-Signature: v=1; a=rsa-sha256; d=${domain}; s=s; c=relaxed/relaxed; h=from; bh=AAAA; b=AAAA\r\nFrom: a@${domain}\r\n\r\nbody\r\n`);

/**
 * A resolver whose name server for silent.example never answers (while `silent.on`), for
 * slow.example answers "not found" after 1 s, and at once for the rest; every question noted.
 */
function dns(): { readonly asked: string[]; readonly silent: { on: boolean }; readonly resolver: (name: string, rrtype: string) => Promise<unknown> } {
  const asked: string[] = [];
  const silent = { on: true };
  const resolver = (name: string, rrtype: string): Promise<unknown> => {
    asked.push(`${rrtype} ${name}`);
    if (name.endsWith("silent.example") && silent.on) return new Promise(() => undefined);
    if (name.endsWith("slow.example")) return new Promise((_, reject) => setTimeout(() => reject(notFound()), 1000).unref());
    return Promise.reject(notFound());
  };
  return { asked, silent, resolver };
}

void test("a verification waiting for a DNS answer that never comes fails at its deadline; the other one in its thread completes there; no thread is started again; the question is forgotten", async () => {
  const d = dns();
  const pool = new VerifierPool(d.resolver, { idleMs: 10_000 });
  try {
    await pool.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task);
    const w = pool.verify(signed("silent.example"), task, AbortSignal.timeout(300));
    w.catch(() => undefined);
    const o = pool.verify(signed("slow.example"), task, AbortSignal.timeout(8000));
    const t0 = performance.now();
    await assert.rejects(w, /verification stopped at the check deadline/);
    assert.ok(performance.now() - t0 < 700, "failed at its deadline, at once");
    const r = await o;
    assert.notEqual(r.dkim.results?.[0]?.status.result, undefined);
    assert.equal(pool.started, 1, "the verifier thread was not ended");
    // The abandoned task's question was forgotten in the thread: the same key is asked again (and now answered), not joined to the one never answered.
    d.silent.on = false;
    const again = await pool.verify(signed("silent.example"), task, AbortSignal.timeout(5000));
    assert.notEqual(again.dkim.results?.[0]?.status.result, undefined);
    assert.equal(d.asked.filter((q) => q === "TXT s._domainkey.silent.example").length, 2, d.asked.join(", "));
    assert.equal(pool.started, 1);
  } finally {
    pool.close();
  }
});

void test("a question two verifications wait for stays asked when one of them is abandoned: the other gets its answer", async () => {
  const d = dns();
  const pool = new VerifierPool(d.resolver, { idleMs: 10_000 });
  try {
    await pool.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task);
    const w = pool.verify(signed("slow.example"), task, AbortSignal.timeout(300));
    w.catch(() => undefined);
    const o = pool.verify(signed("slow.example"), task, AbortSignal.timeout(8000));
    await assert.rejects(w, /deadline/);
    const r = await o;
    assert.notEqual(r.dkim.results?.[0]?.status.result, undefined);
    assert.equal(d.asked.filter((q) => q === "TXT s._domainkey.slow.example").length, 1, d.asked.join(", "));
    assert.equal(pool.started, 1);
  } finally {
    pool.close();
  }
});

void test("the process's shared pool: a worker's verification abandoned at its deadline leaves the thread to the other worker's, and the primary ends nothing", async () => {
  const host = new PoolHost();
  const linkA = new PoolLink(host.connect());
  const linkB = new PoolLink(host.connect());
  const a = new VerifierPool(dns().resolver, { link: linkA });
  const b = new VerifierPool(dns().resolver, { link: linkB });
  try {
    await a.verify(Buffer.from("From: a@example.org\r\n\r\nbody\r\n"), task, AbortSignal.timeout(5000));
    const before = host.received;
    const w = a.verify(signed("silent.example"), task, AbortSignal.timeout(300));
    w.catch(() => undefined);
    const o = b.verify(signed("slow.example"), task, AbortSignal.timeout(8000));
    await assert.rejects(w, /verification stopped at the check deadline/);
    const r = await o;
    assert.notEqual(r.dkim.results?.[0]?.status.result, undefined);
    assert.equal(host.received - before, 0, "no thread ended (nor started)");
    assert.deepEqual(host.sizes(), { verification: 1 });
  } finally {
    linkA.close();
    linkB.close();
    host.close();
  }
});
