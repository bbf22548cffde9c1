// The stack an operator adds to Postfix for the checks Wardmail does itself
// (bench/stack.ts; test/peers/milters.test.ts): Debian's opendkim (verify
// mode) and opendmarc as milters on loopback TCP sockets,
// postfix-policyd-spf-python as a policy service spawned by Postfix's
// master, all resolving against one Knot DNS server (test/peers/knot.ts).
//
// Pointing each of them at Knot:
//   opendkim      `Nameservers 127.0.0.1@PORT`: it is built with libunbound,
//                 whose forwarder address takes "@port". libunbound answers
//                 every name under .test itself (NXDOMAIN: its default local
//                 zones, RFC 6761), which is why bench/stack.ts's sender
//                 domain is sender.example, not bench/checks.ts's
//                 sender.test. (`ResolverConfiguration` with an unbound
//                 config that lifts the .test zone made opendkim die under
//                 load: "fatal flex scanner internal error", libunbound's
//                 config parser is not thread-safe.)
//   opendmarc     no resolver option: it asks libresolv (res_query), which
//                 reads /etc/resolv.conf. It runs in a mount namespace of its
//                 own (`unshare --mount`) where a file naming Knot's second
//                 address (127.53.X.Y port 53: resolv.conf has no port) is
//                 bind-mounted over /etc/resolv.conf. The machine's
//                 /etc/resolv.conf is not touched.
//   policyd-spf   no resolver option either (pyspf over py3dns, which reads
//                 /etc/resolv.conf): Postfix's master is started in the same
//                 kind of namespace (startPostfix's startWrapper), so the
//                 policy daemons it spawns inherit it.
// Each one's config lives in the instance's temp dir; daemons run in the
// foreground as children of the bench and are stopped by PID.
//
// The load comes from 127.0.0.1, which the Debian defaults exempt from the
// checks (opendkim's InternalHosts and opendmarc's IgnoreHosts default to
// 127.0.0.1, policyd-spf.conf's skip_addresses lists 127.0.0.0/8): those are
// pointed at an address no client uses (192.0.2.1, TEST-NET-1), so every
// message is checked.
import { existsSync } from "node:fs";
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnDaemon, type Daemon } from "./daemon.ts";
import { freePort, waitForPort } from "./ports.ts";
import { startPostfix, type PostfixInstance } from "./postfix.ts";

export const OPENDKIM_BIN = "/usr/sbin/opendkim";
export const OPENDMARC_BIN = "/usr/sbin/opendmarc";
export const POLICYD_SPF_BIN = "/usr/bin/policyd-spf";
export const UNSHARE_BIN = "/usr/bin/unshare";
const PSL = "/usr/share/publicsuffix/public_suffix_list.dat";

/** undefined when the stack's programs are installed, else which package is missing. */
export function stackMissing(): string | undefined {
  const need: Array<[string, string]> = [
    [OPENDKIM_BIN, "opendkim"],
    [OPENDMARC_BIN, "opendmarc"],
    [POLICYD_SPF_BIN, "postfix-policyd-spf-python"],
    [UNSHARE_BIN, "util-linux"],
  ];
  for (const [bin, pkg] of need) if (!existsSync(bin)) return `${bin} missing: install ${pkg} (scripts/install-peers.sh)`;
  return undefined;
}

/**
 * A command prefix that runs the rest of the command line in a new mount
 * namespace where `resolvConf` is bind-mounted over /etc/resolv.conf.
 */
export function resolvNamespace(resolvConf: string): string[] {
  return [UNSHARE_BIN, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf];
}

export interface Milter {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  readonly daemon: Daemon;
  /** The config file written for it (for the report). */
  readonly config: string;
}

async function startMilter(name: string, argv: string[], dir: string, configText: (port: number) => string, configFile: string): Promise<Milter> {
  const port = await freePort();
  const config = configText(port);
  await writeFile(configFile, config);
  const daemon = spawnDaemon(argv[0]!, [...argv.slice(1)], dir);
  try {
    await waitForPort(port, 15_000, { alive: () => (daemon.dead() ? `${name} exited: ${daemon.log().slice(-500)}` : undefined) });
  } catch (e) {
    await daemon.stop();
    throw new Error(`${name} did not start: ${e instanceof Error ? e.message : String(e)}\n--- config:\n${config}`);
  }
  return { name, port, pid: daemon.pid, daemon, config };
}

export interface StackOptions {
  /** Knot on 127.0.0.1:knotPort (opendkim's forwarder). */
  knotPort: number;
  /** A resolv.conf naming Knot's port-53 address (opendmarc's namespace). */
  resolvConf: string;
  /** authserv-id of every Authentication-Results header (the same as Wardmail's). */
  authservId: string;
}

/** opendkim in verify mode (Debian's package), on a loopback TCP socket. */
export async function startOpendkim(o: StackOptions): Promise<Milter> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "wm-opendkim-"));
  await chmod(dir, 0o755);
  const conf = path.join(dir, "opendkim.conf");
  await writeFile(path.join(dir, "internal-hosts"), "192.0.2.1\n");
  return startMilter(
    "opendkim",
    [OPENDKIM_BIN, "-f", "-x", conf],
    dir,
    (port) =>
      [
        "# Generated by test/peers/milters.ts: Debian's opendkim, verify only",
        "Mode v",
        `Socket inet:${port}@127.0.0.1`,
        `PidFile ${path.join(dir, "opendkim.pid")}`,
        `AuthservID ${o.authservId}`,
        // The bench's Knot: libunbound forwards every query there (and caches the answers).
        `Nameservers 127.0.0.1@${o.knotPort}`,
        // The library's own key cache as well, as an operator tuning for throughput turns on.
        "QueryCache yes",
        "AlwaysAddARHeader yes",
        // 127.0.0.1 (the load) is not an internal host to sign for: verify its mail.
        `InternalHosts ${path.join(dir, "internal-hosts")}`,
        "Syslog no",
        "",
      ].join("\n"),
    conf,
  );
}

/** opendmarc (Debian's package) in a mount namespace whose /etc/resolv.conf names Knot. */
export async function startOpendmarc(o: StackOptions): Promise<Milter> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "wm-opendmarc-"));
  await chmod(dir, 0o755);
  const conf = path.join(dir, "opendmarc.conf");
  await writeFile(path.join(dir, "ignore-hosts"), "192.0.2.1\n");
  return startMilter(
    "opendmarc",
    [...resolvNamespace(o.resolvConf), OPENDMARC_BIN, "-f", "-c", conf],
    dir,
    (port) =>
      [
        "# Generated by test/peers/milters.ts: Debian's opendmarc",
        `Socket inet:${port}@127.0.0.1`,
        `PidFile ${path.join(dir, "opendmarc.pid")}`,
        `AuthservID ${o.authservId}`,
        // The SPF result of policyd-spf and the DKIM result of opendkim come as
        // Authentication-Results headers with this authserv-id.
        `TrustedAuthservIDs ${o.authservId}`,
        // Enforce p=reject as Wardmail does (the bench's mail passes).
        "RejectFailures true",
        "FailureReports false",
        ...(existsSync(PSL) ? [`PublicSuffixList ${PSL}`] : []),
        // 127.0.0.1 (the load) is not exempt.
        `IgnoreHosts ${path.join(dir, "ignore-hosts")}`,
        "Syslog false",
        "",
      ].join("\n"),
    conf,
  );
}

/**
 * The policyd-spf config (Debian's defaults, with an Authentication-Results
 * header instead of Received-SPF, so that opendmarc and the bench read one
 * kind of header, and loopback not exempt). Written into `dir`, which the
 * policyd-spf user must be able to read.
 */
export async function writePolicydSpfConf(dir: string, authservId: string): Promise<string> {
  const file = path.join(dir, "policyd-spf.conf");
  await writeFile(
    file,
    [
      "# Generated by test/peers/milters.ts from Debian's /etc/postfix-policyd-spf-python/policyd-spf.conf",
      "debugLevel = 1",
      "TestOnly = 1",
      "HELO_reject = Fail",
      "Mail_From_reject = Fail",
      "PermError_reject = False",
      "TempError_Defer = False",
      // Debian's default skips 127.0.0.0/8: the load comes from there.
      "skip_addresses = 192.0.2.1/32",
      "Header_Type = AR",
      `Authserv_Id = ${authservId}`,
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  return file;
}

/**
 * Postfix main.cf and master.cf additions for the stack, as Debian's
 * README.Debian of postfix-policyd-spf-python and the milters' docs say.
 */
export function postfixStackConfig(milters: readonly Milter[], policydConf: string): { main: Record<string, string>; master: string[] } {
  return {
    main: {
      smtpd_milters: milters.map((m) => `inet:127.0.0.1:${m.port}`).join(", "),
      non_smtpd_milters: "",
      smtpd_recipient_restrictions: "reject_unauth_destination, check_policy_service unix:private/policyd-spf",
      "policyd-spf_time_limit": "3600",
    },
    master: [`policyd-spf unix - n n - 0 spawn user=policyd-spf argv=${POLICYD_SPF_BIN} ${policydConf}`],
  };
}

/**
 * A loopback address for Knot's second listener on port 53, the one a
 * resolv.conf can name: 127.53.X.Y from this process's PID, so that two
 * benches or tests at once do not collide.
 */
export function port53Address(): string {
  return `127.53.${(process.pid >> 8) & 255}.${(process.pid % 250) + 2}`;
}

/** Writes DIR/resolv.conf naming `address` (readable by every daemon user); returns its path. */
export async function writeResolvConf(dir: string, address: string): Promise<string> {
  const file = path.join(dir, "resolv.conf");
  await writeFile(file, `# test/peers/milters.ts: the local Knot\nnameserver ${address}\noptions timeout:2 attempts:2\n`, { mode: 0o644 });
  return file;
}

export interface PostfixStack {
  postfix: PostfixInstance;
  /** opendkim, opendmarc. */
  milters: Milter[];
  /** Stops Postfix, then the milters; removes their temp dirs. */
  stop(): Promise<void>;
}

/**
 * Postfix in mailbox mode (virtual Maildir delivery for `mailboxes`) with
 * opendkim and opendmarc as milters and policyd-spf as its policy service,
 * master started in a mount namespace where `resolvConf` is /etc/resolv.conf.
 * `dir` holds policyd-spf.conf: it must be world-readable (0755).
 */
export async function startPostfixStack(o: StackOptions & { dir: string; mailboxes: readonly string[]; extraMain?: Record<string, string> }): Promise<PostfixStack> {
  const milters: Milter[] = [];
  try {
    milters.push(await startOpendkim(o));
    milters.push(await startOpendmarc(o));
    const stack = postfixStackConfig(milters, await writePolicydSpfConf(o.dir, o.authservId));
    const postfix = await startPostfix({
      mode: "mailbox",
      mailboxes: o.mailboxes,
      startWrapper: resolvNamespace(o.resolvConf),
      extraMain: { ...o.extraMain, ...stack.main },
      extraMaster: stack.master,
    });
    return {
      postfix,
      milters,
      async stop(): Promise<void> {
        await postfix.stop();
        for (const m of milters) await m.daemon.stop();
      },
    };
  } catch (e) {
    for (const m of milters) await m.daemon.stop();
    throw e;
  }
}
