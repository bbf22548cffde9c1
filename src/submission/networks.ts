/**
 * Client address helpers for policy: the trusted networks the operator
 * lists (relay without AUTH), and the key under which failures from a client
 * are counted: the IPv4 address, or the /64 of an IPv6 address (one
 * subscriber usually has a whole /64, so counting single IPv6 addresses would
 * let one attacker rotate through 2^64 of them).
 */
import { BlockList, isIPv4, isIPv6 } from "node:net";

/** Strips the IPv4-mapped prefix Node gives on dual-stack sockets. */
export function plainIp(ip: string): string {
  return ip.startsWith("::ffff:") && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

export class Networks {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  /** @param cidrs "address/prefix" strings (already checked by the config loader). */
  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const slash = c.lastIndexOf("/");
      const addr = c.slice(0, slash);
      this.list.addSubnet(addr, Number(c.slice(slash + 1)), isIPv6(addr) ? "ipv6" : "ipv4");
    }
    this.empty = cidrs.length === 0;
  }

  has(ip: string): boolean {
    if (this.empty) return false;
    const p = plainIp(ip);
    if (isIPv4(p)) return this.list.check(p, "ipv4");
    if (isIPv6(p)) return this.list.check(p, "ipv6");
    return false;
  }
}

/** The 8 groups of an IPv6 address, expanded (undefined when not IPv6). */
function ipv6Groups(ip: string): string[] | undefined {
  if (!isIPv6(ip)) return undefined;
  let s = ip.split("%")[0] ?? ip;
  // A trailing dotted IPv4 part becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const o = (v4[1] ?? "").split(".").map(Number);
    s = s.slice(0, -(v4[1] ?? "").length) + `${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = "", tail] = s.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill("0");
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16));
}

/** "ip:192.0.2.1" or "net:2001:db8:0:1::/64": the key failures from a client are counted under. */
export function clientKey(ip: string): string {
  const p = plainIp(ip);
  // Every IPv6 address has a colon, no IPv4 address does: the common case skips the IPv6 parser.
  if (!p.includes(":")) return `ip:${p}`;
  const groups = ipv6Groups(p);
  if (groups) return `net:${groups.slice(0, 4).join(":")}::/64`;
  return `ip:${p}`;
}
