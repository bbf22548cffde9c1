/**
 * Sender authentication (SPF, DKIM, ARC, DMARC) over the mailauth library,
 * and Authentication-Results handling.
 *
 * This face loads no mailauth code: the check runs mailauth in the verifier
 * threads only (check.ts), so a session thread that imports it stays small.
 * The verifier's own functions (verifyDkim, DkimKeyCache, evaluateDmarc:
 * verify.ts, dmarc.ts) are for those threads and the conformance suites.
 */
export { SenderAuthCheck, type MailauthResolver, type SenderAuthOptions } from "./check.ts";
export { authservIdOf, stripOwnHeaders, registrableDomain } from "../message/index.ts";
export type { TxtResolver } from "./verify.ts";
