/**
 * Public face of the HTTPS listener: MTA-STS policy, Thunderbird autoconfig
 * and Outlook Autodiscover for the local domains, and the policy text that
 * `wardmail domain dns` prints.
 */
export { HttpsServer, MAX_BODY, MAX_CONNECTIONS, MAX_HEADERS, REQUEST_TIMEOUT_MS, requestHost, type HttpsServerOptions } from "./server.ts";
export { stsPolicyLines, stsPolicyText, type StsMode, type StsPolicyOptions } from "./policy.ts";
export { autoconfigXml, autodiscoverAddress, autodiscoverXml, plainAddress, xmlEscape, type ClientServer, type MailSettings } from "./autoconfig.ts";
export { mailSettings, startHttps, stsOptions, type RunningHttps } from "./settings.ts";
