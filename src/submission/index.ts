/**
 * Submission policy: AUTH driving and brute-force guard, sending limits,
 * sender ownership (From: header), trusted networks.
 */
export { AuthService, AUTH_BAD, AUTH_BLOCKED, AUTH_OK, type AuthConnection, type AuthStore } from "./auth.ts";
export { AuthGuard, MAX_KNOWN_NETWORKS, serverSecret, type Attempt, type FailureOutcome, type Refusal } from "./guard.ts";
export { Networks, clientKey, plainIp } from "./networks.ts";
export { checkFromHeader, fromAddresses } from "./sender.ts";
