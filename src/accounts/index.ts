/**
 * Public face of the account store: `<dataDir>/accounts.sqlite`, the
 * accounts that may log in (argon2id hash and SCRAM-SHA-256 keys, never the
 * password), their app passwords, aliases and extra sender addresses.
 * AccountStore implements the CredentialStore SMTP AUTH reads.
 */
export type { AccountInfo, AccountStoreOptions } from "./store.ts";
export {
  ACCOUNTS_FILE,
  AccountError,
  AccountStore,
  checkNewPassword,
  generateAppSecret,
  MAX_APP_PASSWORDS,
  MAX_PASSWORD_BYTES,
  MIN_PASSWORD_CHARS,
  normalizeAddress,
  normalizeSender,
} from "./store.ts";
