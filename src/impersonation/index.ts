/**
 * Impersonation of our domains and people in mail from outside: lookalike
 * domains (lookalike.ts) and local display names (check.ts), and the
 * optional external-sender tag.
 */
export { ImpersonationCheck, nameKey, IMPERSONATION_HEADER, EXTERNAL_HEADER, type ImpersonationOptions } from "./check.ts";
export { lookalikeOf, oneEditApart, skeleton, unicodeDomain, isOurs, type Lookalike, type LookalikeKind } from "./lookalike.ts";
