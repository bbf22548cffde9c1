/**
 * `wardmail user key ...`: the OpenPGP public keys and S/MIME certificates
 * that mail to an account is encrypted to before it is stored (src/e2e,
 * table user_keys in `<dataDir>/accounts.sqlite`). Safe while the server
 * runs: the delivery agent reads the keys at every delivery.
 *
 * An alias stands for its account. Validation errors (not a key, a private
 * key, expired, revoked, no encryption subkey, no matching address, a
 * certificate on an unsupported curve...) are refusals (exit 1) with the reason.
 */
import { readFile, stat } from "node:fs/promises";
import { AccountError, AccountStore } from "../accounts/index.ts";
import { KeyError, KeyStore, MAX_KEY_BYTES, MAX_KEYS_PER_ACCOUNT, type StoredKey } from "../e2e/index.ts";
import type { Io } from "./main.ts";
import { loadCommandConfig } from "./load-config.ts";
import { giveToServer } from "./user.ts";

export const USER_KEY_HELP = `Usage: wardmail user key import ADDRESS FILE [--config FILE]
       wardmail user key list [ADDRESS] [--json] [--config FILE]
       wardmail user key remove ADDRESS [FINGERPRINT] [--config FILE]

Encryption on store: every message to an account with a key that is not
already encrypted is encrypted to it before it is stored (Maildir or LMTP):
PGP/MIME for an OpenPGP key, S/MIME for an X.509 certificate; the Subject is
hidden outside ("[...]"), the original message is inside byte for byte.
ADDRESS is an account or one of its aliases (which stands for the account).

  import ADDRESS FILE   FILE: an armored OpenPGP public key (gpg --armor --export)
                        or a PEM X.509 certificate. OpenPGP: valid now, not
                        revoked, with an encryption subkey and a user ID holding
                        the account's address or an alias. X.509: RSA of at
                        least 2048 bits or EC on P-256/384/521, valid now,
                        keyUsage keyEncipherment (RSA) or keyAgreement (EC) and
                        extendedKeyUsage emailProtection when present, and the
                        address as an e-mail subjectAltName. At most ${MAX_KEYS_PER_ACCOUNT} keys per
                        account; importing a key again updates it. With both kinds,
                        the OpenPGP keys are used.
  list [ADDRESS]        the keys (fingerprint, type, expiry, addresses)
  remove ADDRESS [FINGERPRINT]
                        remove one key (its fingerprint or the last 16+ hex digits
                        of it) or, without FINGERPRINT, every key of the account;
                        mail stored encrypted stays encrypted

Options:
  --json            list: machine-readable output
  --config FILE     config whose data directory and local domains to use
Exit codes: 0 done, 1 answer is no (unknown account, key refused, no such key),
2 usage error, 3 cannot read the config, the key file or the accounts database.
`;

const ARGS: Readonly<Record<string, readonly [number, number]>> = { import: [2, 2], list: [0, 1], remove: [1, 2] };

export async function userKeyCommand(params: readonly string[], opts: { readonly config?: string | undefined; readonly json?: boolean | undefined; readonly help?: boolean | undefined }, io: Io): Promise<number> {
  const [action, ...args] = params;
  if (action === undefined || !(action in ARGS)) {
    if (opts.help && action === undefined) {
      io.out(USER_KEY_HELP);
      return 0;
    }
    io.err(`wardmail user key: ${action === undefined ? "missing action" : `unknown action '${action}'`}\n\n${USER_KEY_HELP}`);
    return 2;
  }
  if (opts.help) {
    io.out(USER_KEY_HELP);
    return 0;
  }
  const [min, max] = ARGS[action] ?? [0, 0];
  if (args.length < min || args.length > max) {
    io.err(`wardmail user key ${action}: wrong number of arguments\n\n${USER_KEY_HELP}`);
    return 2;
  }
  if (opts.json && action !== "list") {
    io.err(`wardmail user key ${action}: --json is for list only\n`);
    return 2;
  }

  let file: Buffer | undefined;
  if (action === "import") {
    const path = args[1] ?? "";
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new Error("not a regular file");
      if (st.size > MAX_KEY_BYTES) {
        io.err(`wardmail user key: ${path} is larger than ${MAX_KEY_BYTES} bytes: not a key\n`);
        return 1;
      }
      file = await readFile(path);
    } catch (err) {
      io.err(`wardmail user key: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 3;
    }
  }

  const config = await loadCommandConfig(opts.config, io);
  if (config === undefined) return 3;
  const dataDir = config.server.dataDir;
  if (!AccountStore.exists(dataDir)) {
    if (action === "list" && args[0] === undefined) {
      io.out(opts.json ? "[]\n" : "no keys\n");
      return 0;
    }
    io.err(`wardmail user key: no such account or alias: ${(args[0] ?? "").toLowerCase()}\n`);
    return 1;
  }
  let store: AccountStore;
  try {
    store = AccountStore.open(dataDir, { create: false, localDomains: config.local.domains });
  } catch (err) {
    io.err(`wardmail user key: cannot open the accounts database: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
  let code: number;
  try {
    const keys = new KeyStore(store);
    code = await run(action, args, keys, file, opts.json === true, io);
  } catch (err) {
    if (err instanceof AccountError || err instanceof KeyError) {
      io.err(`wardmail user key: ${err.message}\n`);
      code = 1;
    } else if (err instanceof Error && "code" in err && err.code === "ERR_SQLITE_ERROR") {
      io.err(`wardmail user key: cannot use the accounts database: ${err.message}\n`);
      code = 3;
    } else {
      throw err;
    }
  } finally {
    store.close();
  }
  if (action !== "list") {
    try {
      await giveToServer(config, dataDir, false);
    } catch (err) {
      io.err(`wardmail user key: cannot give the accounts database to user ${config.server.user}: ${err instanceof Error ? err.message : String(err)}\n`);
      return 3;
    }
  }
  return code;
}

function expiry(k: StoredKey): string {
  return k.expires === null ? "never" : new Date(k.expires).toISOString().slice(0, 10);
}

function line(k: StoredKey): string {
  const type = k.kind === "pgp" ? "pgp" : "smime";
  const expired = k.expires !== null && k.expires < Date.now() ? " (EXPIRED)" : "";
  return `${k.account}  ${type}  ${k.fingerprint}  ${k.algorithm}  expires ${expiry(k)}${expired}  ${k.addresses.join(", ")}\n`;
}

function shown(k: StoredKey): object {
  return { account: k.account, type: k.kind, fingerprint: k.fingerprint, algorithm: k.algorithm, created: k.created, expires: k.expires, addresses: k.addresses, imported: k.imported };
}

async function run(action: string, args: readonly string[], keys: KeyStore, file: Buffer | undefined, json: boolean, io: Io): Promise<number> {
  switch (action) {
    case "import": {
      const { key, replaced } = await keys.import(args[0] ?? "", file ?? Buffer.alloc(0));
      io.out(`${replaced ? "updated" : "imported"} ${key.kind === "pgp" ? "OpenPGP key" : "S/MIME certificate"} ${key.fingerprint} for ${key.account} (expires ${expiry(key)}; ${key.addresses.join(", ")})\n`);
      return 0;
    }
    case "list": {
      const list = keys.list(args[0]);
      if (json) io.out(JSON.stringify(list.map(shown)) + "\n");
      else io.out(list.length === 0 ? "no keys\n" : list.map(line).join(""));
      return 0;
    }
    case "remove": {
      const gone = keys.remove(args[0] ?? "", args[1]);
      if (gone.length === 0) {
        io.err(`wardmail user key: ${args[1] === undefined ? `${(args[0] ?? "").toLowerCase()} has no keys` : `${(args[0] ?? "").toLowerCase()} has no key ${args[1]}`}\n`);
        return 1;
      }
      for (const k of gone) io.out(`removed ${k.kind === "pgp" ? "OpenPGP key" : "S/MIME certificate"} ${k.fingerprint} of ${k.account}\n`);
      return 0;
    }
    default:
      throw new Error(`unhandled action ${action}`);
  }
}
