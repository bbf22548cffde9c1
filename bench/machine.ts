// The machine a bench ran on, for its JSON result: CPUs, memory, OS, kernel,
// Node, the Postfix version (postconf) and the load average at the start.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { POSTCONF_BIN } from "../test/peers/postfix.ts";

/** With `openssl`, Node's OpenSSL version too (after the Postfix version). */
export function machineInfo({ openssl = false } = {}): Record<string, unknown> {
  let postfixVersion = "unknown";
  try {
    postfixVersion = execFileSync(POSTCONF_BIN, ["-d", "-h", "mail_version"], { encoding: "utf8" }).trim();
  } catch {
    /* keep unknown */
  }
  let osRelease = "";
  try {
    osRelease = /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "";
  } catch {
    /* keep empty */
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: osRelease,
    kernel: os.release(),
    node: process.version,
    postfix: postfixVersion,
    ...(openssl ? { openssl: process.versions.openssl } : {}),
    loadavgAtStart: os.loadavg(),
  };
}
