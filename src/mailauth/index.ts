/**
 * Sender authentication (SPF, DKIM, ARC, DMARC) over the mailauth library,
 * and Authentication-Results handling.
 */
export { SenderAuthCheck, type MailauthResolver, type SenderAuthOptions } from "./check.ts";
export { authservIdOf, stripOwnHeaders } from "../message/index.ts";
export { DkimKeyCache, verifyDkim, type TxtResolver } from "./verify.ts";
export { evaluateDmarc } from "./dmarc.ts";
export { registrableDomain } from "./psl.ts";
