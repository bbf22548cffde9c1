/**
 * Public face of ACME (RFC 8555): the manager the primary runs when
 * acme.directory is set (order, renewal, HTTP-01 responder, DANE key
 * handling), and the TLSA helper.
 */
export { AcmeManager, tlsa311, CHECK_EVERY_MS, RETRY_MS, type AcmeOptions, type CheckResult } from "./manager.ts";
export { ChallengeServer } from "./challenge.ts";
