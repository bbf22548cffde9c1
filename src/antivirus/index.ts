/**
 * Virus scanning by clamd (INSTREAM over TCP or a unix socket) as a content
 * check: every message before its 250, inbound and on submission.
 */
export { AntivirusCheck, antivirusFromConfig, DEBIAN_CLAMD_SOCKET, type AntivirusOptions } from "./check.ts";
export { ClamdError, cleanSignature, describeTarget, parseScanReply, ping, scan, type ScanResult } from "./clamd.ts";
