/**
 * Outbound TLS end to end with real, independent peers
 * (test/helpers/outbound-world.ts: Knot, four Postfix MX hosts, the MTA-STS
 * policy server on 127.0.0.7:443, one Wardmail): REQUIRETLS without a way to
 * honour it bounces (5.7.10, 5.7.30); MTA-STS enforce refuses a wrong
 * certificate and delivers over verified TLS, and a policy that cannot be
 * fetched is as none; required STARTTLS not offered defers; TLS-RPT counts
 * are read from <dataDir>/tlsrpt.sqlite and checked against RFC 8460's shape
 * (a conformance sample). The tests depend on the ones before them in this
 * file (the TLS-RPT ones read what the deliveries counted).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import type { ParsedDsn } from "../src/outbound/dsn-parse.ts";
import { reportJson, TlsRptStore, utcDay } from "../src/outbound/tlsrpt.ts";
import { conformanceFile } from "./helpers/conformance.ts";
import { outboundWorld, outboundSkip, token } from "./helpers/outbound-world.ts";

const skip = outboundSkip();
const world = outboundWorld({ skip, peers: ["peer", "notls", "sts", "stsbad"], mtaSts: true });
const { submit, submitRequireTls, dsnWith, queueEntry, dropFromQueue, okSession, waitSessions, policyHits } = world;

/** The DSN of the REQUIRETLS-to-MTA-STS test, for the test after it. */
let requireTlsStsDsn: ParsedDsn | undefined;

describe("outbound delivery to real MX hosts", { skip }, () => {
  test("REQUIRETLS to a domain without MTA-STS or DANE: not sent, DSN 5.7.10", async () => {
    const subject = token("requiretls");
    await submitRequireTls("rt@peer.test", subject);
    const { raw, dsn } = await dsnWith("rt@peer.test");
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed", raw);
    assert.equal(r.status, "5.7.10", raw);
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?rt@peer\.test$/i);
    // Never handed to the peer.
    assert.equal((await world.peer("peer").mailbox("rt@peer.test")).length, 0);
    assert.doesNotMatch(await world.peer("peer").readLog(), /rt@peer\.test/);
    // The bounce returns the header only, despite RET=FULL: the body stays off the (possibly unprotected) way back.
    assert.ok(!raw.includes("Secret."), raw);
    assert.equal(dsn.returned?.type, "text/rfc822-headers", raw);
    assert.ok(dsn.returned?.content.toString("latin1").includes(`Subject: ${subject}`), raw);
  });

  test("MTA-STS enforce, MX certificate for the wrong name: deferred, never delivered (not even in plaintext)", async () => {
    const bad = world.peer("stsbad");
    const subject = token("stsbad");
    await submit("fay@stsbad.test", subject);
    const deferred = await queueEntry("fay@stsbad.test", (e) => e.state === "deferred" && (e.lastError ?? "") !== "");
    assert.match(deferred.lastError ?? "", /certificate/i, JSON.stringify(deferred));
    assert.ok((policyHits.get("mta-sts.stsbad.test") ?? 0) >= 1, "the policy was never fetched");
    // Two attempts at least (retry_max 2 s), both refused after the handshake.
    const tried = await waitSessions("mx.stsbad.test", 2, 10_000);
    for (const l of tried) {
      assert.equal(l.tlsPolicy, "verify", JSON.stringify(l));
      assert.equal(l.tlsSource, "mta-sts", JSON.stringify(l));
      assert.match(String(l.error), /certificate-host-mismatch/, JSON.stringify(l));
    }
    const log = await bad.readLog();
    assert.match(log, /TLS connection established from \S+\[127\.0\.0\.1\]/, log.slice(-2000));
    assert.doesNotMatch(log, /fay@stsbad\.test|from=<alice@example\.test>|status=sent/, log.slice(-3000));
    assert.equal((await bad.mailbox("fay@stsbad.test")).length, 0);
    // Still queued; then out of the way of the other tests (its TLS-RPT counts stay).
    await queueEntry("fay@stsbad.test", (e) => e.state === "deferred");
    await dropFromQueue("fay@stsbad.test");
  });

  test("MTA-STS enforce, MX certificate valid for the policy's MX (test CA): delivered over verified TLS", async () => {
    const good = world.peer("sts");
    const subject = token("sts");
    await submit("eve@sts.test", subject);
    const got = await good.waitForMailbox("eve@sts.test", 1, 15_000);
    assert.ok(got.some((m) => m.toString("latin1").includes(subject)), `not delivered\n${world.wardmail().output().slice(-3000)}`);
    assert.ok((policyHits.get("mta-sts.sts.test") ?? 0) >= 1, "the policy was never fetched");
    const ok = await okSession("mx.sts.test");
    assert.equal(ok.tlsPolicy, "verify");
    assert.equal(ok.tlsSource, "mta-sts");
    assert.equal(ok.verified, true);
    assert.match(String(ok.tls), /^TLSv1\.[23]$/);
  });

  test("an MTA-STS policy that cannot be fetched (HTTP 404), none cached: delivered as without MTA-STS (RFC 8461 §5.1)", async () => {
    const peer = world.peer("peer");
    const subject = token("stsfetch");
    await submit("gus@stsfetch.test", subject);
    const got = await peer.waitForMailbox("gus@stsfetch.test", 1, 15_000);
    assert.ok(got.some((m) => m.toString("latin1").includes(subject)), `not delivered\n${world.wardmail().output().slice(-3000)}`);
    assert.ok((policyHits.get("mta-sts.stsfetch.test") ?? 0) >= 1, "the policy fetch was never tried");
    const session = await okSession("mx.stsfetch.test");
    assert.equal(session.tlsSource, "opportunistic");
  });

  test(
    "TLS-RPT counts the failed policy fetch (sts-policy-fetch-error, RFC 8460 §4.3.2)",
    () => {
      const store = TlsRptStore.open(world.wardmail().dataDir);
      try {
        const r = store.report(utcDay(Date.now()), "stsfetch.test", { name: "mx.example.test", contact: "postmaster@mx.example.test" });
        const types = r?.policies.flatMap((p) => p.failureDetails.map((d) => d.resultType)) ?? [];
        assert.ok(types.includes("sts-policy-fetch-error"), JSON.stringify(r));
      } finally {
        store.close();
      }
    },
  );

  test("REQUIRETLS to an MTA-STS domain whose MX does not offer REQUIRETLS (Postfix 3.7): not sent, DSN 5.7.30", async () => {
    const good = world.peer("sts");
    const subject = token("rt-sts");
    await submitRequireTls("rt@sts.test", subject);
    const { raw, dsn } = await dsnWith("rt@sts.test");
    requireTlsStsDsn = dsn;
    const r = dsn.recipients[0] ?? {};
    assert.equal(r.action, "failed", raw);
    assert.equal(r.status, "5.7.30", raw);
    assert.match(r["final-recipient"] ?? "", /^rfc822; ?rt@sts\.test$/i);
    assert.equal((await good.mailbox("rt@sts.test")).length, 0);
    assert.doesNotMatch(await good.readLog(), /rt@sts\.test/);
  });

  test(
    "a failure Wardmail decided itself (no REQUIRETLS at the MX) has no SMTP Diagnostic-Code with a made-up reply code 0",
    () => {
      assert.ok(requireTlsStsDsn, "needs the test above");
      const r = requireTlsStsDsn.recipients[0] ?? {};
      // The MX replied nothing of the kind: the client saw no REQUIRETLS in EHLO and never sent MAIL.
      assert.doesNotMatch(r["diagnostic-code"] ?? "", /^smtp; ?0 /);
      assert.doesNotMatch(requireTlsStsDsn.text, /said: 0 /);
    },
  );

  test("STARTTLS required (tls_policy encrypt) but not offered: deferred, and today's TLS-RPT report says starttls-not-supported in RFC 8460 shape", async () => {
    const notls = world.peer("notls");
    const s = world.wardmail();
    const subject = token("notls");
    const dayBefore = utcDay(Date.now());
    await submit("dan@notls.test", subject);
    const deferred = await queueEntry("dan@notls.test", (e) => e.state === "deferred" && (e.lastError ?? "") !== "");
    assert.match(deferred.lastError ?? "", /STARTTLS|TLS/i, JSON.stringify(deferred));
    await waitSessions("mx.notls.test", 1);
    assert.equal((await notls.mailbox("dan@notls.test")).length, 0);
    assert.doesNotMatch(await notls.readLog(), /from=<alice@example\.test>|status=sent/);
    await dropFromQueue("dan@notls.test");

    const sample = JSON.parse(await readFile(conformanceFile("tlsrpt", "stalwart", "rpt01.json"), "utf8")) as Record<string, unknown>;
    const samplePolicy = (sample.policies as Record<string, unknown>[])[0] ?? {};
    const sampleDetails = samplePolicy["failure-details"] as Record<string, unknown>[];
    const detailNames = new Set([...sampleDetails.flatMap((d) => Object.keys(d)), "receiving-mx-helo", "failure-reason-code", "additional-information"]);
    const keys = (o: unknown): string[] => Object.keys(o as object).sort();

    const store = TlsRptStore.open(s.dataDir);
    try {
      const org = { name: "mx.example.test", contact: "postmaster@mx.example.test" };
      const reportFor = (domain: string): Record<string, unknown> => {
        for (const day of new Set([dayBefore, utcDay(Date.now())])) {
          const r = store.report(day, domain, org);
          if (r) return JSON.parse(reportJson(r)) as Record<string, unknown>;
        }
        return assert.fail(`no TLS-RPT data for ${domain}`);
      };
      const shape = (rep: Record<string, unknown>): Record<string, unknown> => {
        assert.deepEqual(keys(rep), keys(sample));
        assert.deepEqual(keys(rep["date-range"]), keys(sample["date-range"]));
        const pols = rep.policies as Record<string, unknown>[];
        assert.equal(pols.length, 1, JSON.stringify(rep));
        const p = pols[0] ?? {};
        assert.deepEqual(keys(p), keys(samplePolicy));
        assert.deepEqual(keys(p.policy), keys(samplePolicy.policy));
        assert.deepEqual(keys(p.summary), keys(samplePolicy.summary));
        for (const d of p["failure-details"] as Record<string, unknown>[]) {
          for (const k of Object.keys(d)) assert.ok(detailNames.has(k), `unknown failure-details field ${k}`);
          for (const k of ["result-type", "receiving-mx-hostname", "receiving-ip", "failed-session-count"]) assert.ok(k in d, `failure-details without ${k}: ${JSON.stringify(d)}`);
        }
        return p;
      };

      // The operator's "encrypt" policy: no published policy.
      const notlsRep = reportFor("notls.test");
      const p = shape(notlsRep);
      assert.deepEqual(p.policy, { "policy-type": "no-policy-found", "policy-string": [], "policy-domain": "notls.test", "mx-host": ["mx.notls.test"] });
      const sum = p.summary as Record<string, number>;
      assert.equal(sum["total-successful-session-count"], 0);
      assert.ok((sum["total-failure-session-count"] ?? 0) >= 1);
      const detail = (p["failure-details"] as Record<string, unknown>[]).find((d) => d["result-type"] === "starttls-not-supported");
      assert.ok(detail, JSON.stringify(p));
      assert.equal(detail["receiving-mx-hostname"], "mx.notls.test");
      assert.equal(detail["receiving-ip"], "127.0.0.3");
      assert.ok(Number(detail["failed-session-count"]) >= 1);
      assert.equal(sum["total-failure-session-count"], detail["failed-session-count"]);
      assert.match((notlsRep["date-range"] as Record<string, string>)["start-datetime"] ?? "", /^\d{4}-\d{2}-\d{2}T00:00:00Z$/);

      // MTA-STS: the wrong-name certificate, with the policy as fetched.
      const bad = shape(reportFor("stsbad.test"));
      assert.deepEqual(bad.policy, {
        "policy-type": "sts",
        "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.stsbad.test", "max_age: 86400"],
        "policy-domain": "stsbad.test",
        "mx-host": ["mx.stsbad.test"],
      });
      const mismatch = (bad["failure-details"] as Record<string, unknown>[]).find((d) => d["result-type"] === "certificate-host-mismatch");
      assert.ok(mismatch, JSON.stringify(bad));
      assert.equal(mismatch["receiving-ip"], "127.0.0.6");
      assert.equal((bad.summary as Record<string, number>)["total-successful-session-count"], 0);

      // MTA-STS success.
      const good = shape(reportFor("sts.test"));
      assert.equal((good.policy as Record<string, unknown>)["policy-type"], "sts");
      assert.ok(((good.summary as Record<string, number>)["total-successful-session-count"] ?? 0) >= 1, JSON.stringify(good));
      assert.equal((good.summary as Record<string, number>)["total-failure-session-count"], 0);
    } finally {
      store.close();
    }
  });

  test(
    "TLS-RPT failure details name the sending MTA's IP (sending-mta-ip, RFC 8460 §4.4)",
    () => {
      const store = TlsRptStore.open(world.wardmail().dataDir);
      try {
        const r = store.report(utcDay(Date.now()), "notls.test", { name: "mx.example.test", contact: "postmaster@mx.example.test" });
        assert.ok(r, "no TLS-RPT data for notls.test (run with the test above)");
        const details = r.policies.flatMap((p) => p.failureDetails);
        assert.ok(details.length > 0);
        for (const d of details) assert.equal(d.sendingMtaIp, "127.0.0.1", JSON.stringify(d));
      } finally {
        store.close();
      }
    },
  );
});
