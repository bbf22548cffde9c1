/**
 * The plain data that crosses between a session thread (check.ts) and the
 * verifier threads (thread.ts, content.ts): what the session sends for one
 * SPF evaluation or one message, and the few fields of mailauth's results
 * it reads back. This module loads no mailauth code (types only), so a
 * session thread that imports the check never loads mailauth, tldts, Joi or
 * libmime: those live in the verifier threads only.
 */
import type { DMARCResult, SPFResult } from "mailauth";

/** SPF for one connection's identities (MAIL FROM, and postmaster@HELO), evaluated in a verifier thread (spf-cache.ts there). */
export interface SpfTask {
  readonly spf: {
    readonly clientIp: string;
    /** The HELO identity as mailauth expects it (address literals in brackets). */
    readonly helo: string;
    /** Our authserv-id (%{r}, and the Received-SPF header). */
    readonly mta: string;
    /** The identities to evaluate (one or two), answered in this order. */
    readonly senders: readonly string[];
  };
}

/** One identity's SPF result, and until when (Date.now() ms) it may be used: 0 when it is not to be kept (spf-cache.ts). */
export interface SpfAnswer {
  readonly result: SPFResult;
  readonly until: number;
}

/** The author (RFC5322.From) domain DMARC evaluated, lower case; "" when there is none. (`domain` is its Organizational Domain.) */
export function authorDomain(result: DMARCResult | false): string {
  return result ? (result.status.header?.from ?? "").toLowerCase().replace(/\.+$/, "") : "";
}
