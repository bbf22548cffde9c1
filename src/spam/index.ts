/**
 * Spam scoring with rspamd (check.ts, a content check over rspamd.ts's
 * HTTP client) and the hold of accounts that look compromised (hold.ts).
 */
export { SpamCheck, scoreHeader, SPAM_HEADER, type SpamCheckOptions } from "./check.ts";
export { RspamdClient, RspamdError, parseAnswer, MAX_ANSWER, type RspamdResult, type RspamdAction, type RspamdRequest } from "./rspamd.ts";
export { AccountHold, type Hold, type Level } from "./hold.ts";
