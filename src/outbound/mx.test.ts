/** MX resolution: order and shuffling, implicit MX, null MX, NXDOMAIN, DNS errors, the AD bit. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { StaticResolver } from "../dns/index.ts";
import { resolveMx } from "./mx.ts";

const zone = new StaticResolver({
  "multi.test": { MX: [[20, "c.multi.test"], [10, "a.multi.test"], [10, "b.multi.test"]], authenticated: true },
  "a.multi.test": { A: ["192.0.2.1"], AAAA: ["2001:db8::1"], authenticated: true },
  "b.multi.test": { A: ["192.0.2.2"], authenticated: true },
  "c.multi.test": { A: ["192.0.2.3"] },
  "implicit.test": { A: ["192.0.2.9"] },
  "nullmx.test": { MX: [[0, "."]] },
  "noaddr.test": { MX: [[10, "gone.noaddr.test"]] },
  "broken.test": "SERVFAIL",
  "halfbroken.test": { MX: [[10, "slow.halfbroken.test"]] },
  "slow.halfbroken.test": "TIMEOUT",
});

test("MX hosts by preference, equal preferences shuffled, addresses IPv4 then IPv6, AD kept", async () => {
  const seenFirst = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const r = await resolveMx(zone, "multi.test");
    assert.equal(r.kind, "hosts");
    if (r.kind !== "hosts") return;
    assert.deepEqual(r.hosts.map((h) => h.preference), [10, 10, 20]);
    assert.equal(r.hosts[2]?.name, "c.multi.test");
    seenFirst.add(r.hosts[0]?.name ?? "");
    assert.ok(r.secure);
    const a = r.hosts.find((h) => h.name === "a.multi.test");
    assert.deepEqual(a?.addresses, ["192.0.2.1", "2001:db8::1"]);
    assert.ok(a?.secure);
    assert.equal(r.hosts.find((h) => h.name === "c.multi.test")?.secure, false);
  }
  assert.deepEqual([...seenFirst].sort(), ["a.multi.test", "b.multi.test"]);
});

test("no MX: the domain itself (implicit MX); null MX and NXDOMAIN are permanent; DNS errors temporary", async () => {
  const imp = await resolveMx(zone, "implicit.test");
  assert.ok(imp.kind === "hosts" && imp.implicit && imp.hosts[0]?.addresses[0] === "192.0.2.9");
  assert.deepEqual(await resolveMx(zone, "nullmx.test"), { kind: "permanent", status: "5.1.10", reason: "domain nullmx.test does not accept mail (null MX)" });
  assert.equal((await resolveMx(zone, "nowhere.test")).kind, "permanent");
  assert.equal((await resolveMx(zone, "broken.test")).kind, "temporary");
  assert.equal((await resolveMx(zone, "halfbroken.test")).kind, "temporary");
  assert.equal((await resolveMx(zone, "noaddr.test")).kind, "temporary");
});
