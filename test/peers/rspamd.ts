// A real rspamd (Debian package rspamd, 3.4) for tests and the benchmark: its
// own minimal config in a temp dir (never /etc/rspamd), the normal worker on a
// loopback high port, no controller, no Redis, no DNS (a closed loopback port),
// hyperscan off (starts in under a second instead of ~10 s of compiling).
// Run in the foreground (-f) as a child of this process, stopped by PID
// (test/peers/daemon.ts); as root with -i (--insecure: workers stay root).
//
// Test rules (lua): WARDMAIL_TEST_SCORE adds the number in an X-Test-Score
// header to the score (so a test picks rspamd's action: greylist 4, add
// header 6, rewrite subject 8, soft reject 10, reject 15); WM_USER,
// WM_HELO, WM_RCPT, WM_IP and WM_AR match when rspamd got the authenticated
// user, the HELO name, the envelope recipients, the client address and an
// Authentication-Results header. GTUBE (built in) rejects;
// enable_test_patterns turns on its add-header and rewrite-subject variants.
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnDaemon, waitReady, withPortRetries, type Daemon } from "./daemon.ts";
import { freePort } from "./ports.ts";
import { binaryMissing } from "../helpers/peers.ts";

export interface Rspamd {
  readonly port: number;
  readonly url: string;
  readonly daemon: Daemon;
  stop(): Promise<void>;
}

export function rspamdMissing(): string | undefined {
  return binaryMissing("rspamd", ["--version"], "rspamd", { exitZero: true });
}

/** The GTUBE test string, built at run time (never committed whole). */
export function gtube(prefix = "X"): string {
  return `${prefix}JS*C4JDBQADN1.NSBN3*2IDNEN*${["GTUBE", "STANDARD", "ANTI", "UBE", "TEST", "EMAIL"].join("-")}*C.34X`;
}

const LUA = `
rspamd_config:register_symbol({ name = 'WARDMAIL_TEST_SCORE', score = 1.0, callback = function(task)
  local h = task:get_header('X-Test-Score')
  local n = h and tonumber(h)
  if n then task:insert_result('WARDMAIL_TEST_SCORE', n) end
end })
local function flag(name, test)
  rspamd_config:register_symbol({ name = name, score = 0.01, callback = function(task)
    if test(task) then task:insert_result(name, 1.0) end
  end })
end
flag('WM_USER', function(task) return task:get_user() ~= nil end)
flag('WM_HELO', function(task) return task:get_helo() ~= nil end)
flag('WM_RCPT', function(task) local r = task:get_recipients('smtp'); return r ~= nil and #r > 0 end)
flag('WM_IP', function(task) local ip = task:get_from_ip(); return ip ~= nil and ip:is_valid() end)
flag('WM_AR', function(task) return task:get_header('Authentication-Results') ~= nil end)
`;

function config(dir: string, port: number, workers: number): string {
  return `options {
  pidfile = "${dir}/rspamd.pid";
  filters = "";
  dbdir = "${dir}/db";
  cache_file = "${dir}/db/symbols.cache";
  control_socket = "${dir}/db/rspamd.sock mode=0600";
  tempdir = "${dir}";
  url_tld = "/usr/share/rspamd/effective_tld_names.dat";
  allow_raw_input = true;
  enable_test_patterns = true;
  disable_hyperscan = true;
  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }
}
logging { type = "console"; level = "error"; }
actions { reject = 15; soft_reject = 10; rewrite_subject = 8; add_header = 6; greylist = 4; }
lua = "${dir}/test.lua";
worker "normal" { bind_socket = "127.0.0.1:${port}"; count = ${workers}; mime = true; }
`;
}

async function pong(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(500) });
    return r.ok && (await r.text()).includes("pong");
  } catch {
    return false;
  }
}

/** Starts rspamd with `workers` normal worker processes (default 1). */
export async function startRspamd(opts: { workers?: number } = {}): Promise<Rspamd> {
  return withPortRetries<Rspamd>("rspamd", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wardmail-rspamd-"));
    const port = await freePort();
    await writeFile(join(dir, "test.lua"), LUA);
    await writeFile(join(dir, "rspamd.conf"), config(dir, port, opts.workers ?? 1));
    await mkdir(join(dir, "db"));
    const daemon = spawnDaemon("rspamd", ["-f", "-i", "-c", join(dir, "rspamd.conf")], dir, { stdout: true });
    if (!(await waitReady(daemon, 30_000, () => pong(port)))) {
      const log = daemon.log();
      await daemon.stop();
      if (/Address already in use/i.test(log)) return { retry: log };
      throw new Error(`rspamd did not answer /ping within 30 s:\n${log.slice(-3000)}`);
    }
    return { port, url: `http://127.0.0.1:${port}`, daemon, stop: () => daemon.stop() };
  });
}
