/**
 * Public face of the config loader. One TOML file, holding only what differs
 * from the embedded defaults, becomes the deeply frozen `Config`; every
 * problem is reported as "file:line: key: what was expected". `CONFIG_KEYS`
 * lists every key with its type, default and limits (docs/configuration.md
 * is tested against it).
 */
export type {
  BareLineEndingPolicy,
  CertificatePair,
  Config,
  EightBitPolicy,
  ListenAddress,
} from "./types.ts";
export type { ConfigKey } from "./keys.ts";
export { CONFIG_KEYS, tomlLiteral } from "./keys.ts";
export type { CheckResult, ConfigIssue, ParseOptions } from "./load.ts";
export type { WarningOptions } from "./warnings.ts";
export {
  checkConfigFile,
  ConfigError,
  defaultConfig,
  formatIssues,
  loadConfig,
  loadConfigWithWarnings,
  parseConfig,
} from "./load.ts";
export type { LmtpTarget } from "./types.ts";
export { VERDICT_DEFAULTS } from "./keys.ts";
export type { RelayHost, TlsPolicy } from "./types.ts";
export type { DnsblZone } from "./types.ts";
export type { CheckAction, ClamdTarget } from "./types.ts";
export { ATTACHMENT_KINDS } from "./antivirus.ts";
