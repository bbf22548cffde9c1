/**
 * Config keys of who may do what (part of the one table in keys.ts): the
 * [auth], [relay], [accounts] and [dns] sections, in file order.
 */
import type { Field } from "./keys.ts";
import {
  MECHANISMS,
  arrayOf,
  boolean,
  integer,
  mechanisms,
  oneOf,
  parseCidr,
  parseDnsServer,
  stringElement,
} from "./checkers.ts";

export const AUTH_FIELDS: readonly Field[] = [
  {
    section: "auth", name: "mechanisms", type: "array of strings", default: [...MECHANISMS], values: MECHANISMS,
    doc: "SASL mechanisms offered, in this order, once TLS is active. -PLUS is offered only on TLS 1.3 connections (tls-exporter channel binding).",
    check: mechanisms,
  },
  {
    section: "auth", name: "on_mx", type: "boolean", default: false,
    doc: "Also offer AUTH on the smtp (MX) listener, after STARTTLS. Submission listeners always offer it.",
    check: boolean,
  },
  {
    section: "auth", name: "failure_delay", type: "integer (milliseconds)", default: 1000, min: 0, max: 60000,
    doc: "Delay before the reply to a failed AUTH; it doubles with each further attempt from the same client address (or IPv6 /64), or naming the same user, in their windows, up to auth.max_failure_delay.",
    check: integer(0, 60000),
  },
  {
    section: "auth", name: "max_failure_delay", type: "integer (milliseconds)", default: 15000, min: 0, max: 300000,
    doc: "Longest delay before the reply to a failed AUTH.",
    check: integer(0, 300000),
  },
  {
    section: "auth", name: "ip_max_failures", type: "integer", default: 10, min: 1, max: 100000,
    doc: "Failed AUTH attempts from one client address (IPv6: one /64) within auth.ip_window after which that client is blocked from AUTH for auth.ip_block seconds. An attempt counts before its password is checked (a success is given back), so parallel connections get no more passwords checked.",
    check: integer(1, 100000),
  },
  {
    section: "auth", name: "ip_window", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "Window in which failures from one client address are counted.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "ip_block", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "How long a client address stays blocked from AUTH.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "account_max_failures", type: "integer", default: 30, min: 1, max: 100000,
    doc: "Failed AUTH attempts naming one user (from any address) within auth.account_window after which that user is locked for auth.account_lock seconds, except from clients in auth.known_network_window. Counted for unknown names too, so a lockout never tells whether a user exists.",
    check: integer(1, 100000),
  },
  {
    section: "auth", name: "account_window", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "Window in which failures naming one user are counted.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "account_lock", type: "integer (seconds)", default: 900, min: 1, max: 86400,
    doc: "How long a user stays locked. Attempts refused during the lock are not counted, so they cannot extend it.",
    check: integer(1, 86400),
  },
  {
    section: "auth", name: "known_network_window", type: "integer (seconds)", default: 604800, min: 0, max: 7776000,
    doc: "A client address (IPv6: its /64) where an account logged in successfully within this many seconds is not subject to that account's lock (it still has its own ip_max_failures). 0: the lock holds for every client.",
    check: integer(0, 7776000),
  },
  {
    section: "relay", name: "trusted_networks", type: "array of strings", default: [],
    doc: 'Client networks that may relay without AUTH (e.g. ["127.0.0.1/32"] for a web application on this host), on every listener. Empty: only authenticated clients relay.',
    check: arrayOf("networks", stringElement(parseCidr, "a network"), (n) => n),
  },
  {
    section: "accounts", name: "max_messages_per_hour", type: "integer", default: 200, min: 1, max: 1000000,
    doc: "Messages one account may submit per hour (sliding window); beyond it MAIL gets 451 4.7.1.",
    check: integer(1, 1000000),
  },
  {
    section: "accounts", name: "max_recipients_per_hour", type: "integer", default: 1000, min: 1, max: 10000000,
    doc: "Recipients one account may submit to per hour (sliding window); beyond it RCPT gets 452 4.7.1.",
    check: integer(1, 10000000),
  },
  {
    section: "accounts", name: "hold_factor", type: "integer", default: 10, min: 0, max: 10000,
    doc: "An account whose messages or recipients in the last hour exceed this many times its usual hourly level (and the hold_min_* floors) is held. 0: no volume hold.",
    check: integer(0, 10000),
  },
  {
    section: "accounts", name: "hold_min_messages", type: "integer", default: 50, min: 1, max: 1000000,
    doc: "Messages in the last hour below which an account is never held for volume.",
    check: integer(1, 1000000),
  },
  {
    section: "accounts", name: "hold_min_recipients", type: "integer", default: 200, min: 1, max: 10000000,
    doc: "Recipients in the last hour below which an account is never held for volume.",
    check: integer(1, 10000000),
  },
  {
    section: "accounts", name: "hold_history", type: "integer (days)", default: 14, min: 1, max: 90,
    doc: "Days of past sending (hourly counts) that make an account's usual level: the mean per hour over this many days.",
    check: integer(1, 90),
  },
  {
    section: "accounts", name: "hold_refused_percent", type: "integer", default: 50, min: 0, max: 100,
    doc: "An account whose recipients in the last hour were refused (at our RCPT, or permanently by the remote server) at least this often, in percent, is held. 0: no hold for refusals.",
    check: integer(0, 100),
  },
  {
    section: "accounts", name: "hold_refused_min", type: "integer", default: 20, min: 1, max: 1000000,
    doc: "Refused recipients in the last hour below which an account is never held for refusals.",
    check: integer(1, 1000000),
  },
  {
    section: "dns", name: "servers", type: "array of strings", default: [],
    doc: 'DNS servers (recursive resolvers) to ask, each "IP", "IP:port" or "[IPv6]:port", tried in order. Empty: the nameservers of /etc/resolv.conf.',
    check: arrayOf("DNS servers", stringElement(parseDnsServer, "a DNS server"), (a) => `${a.host}:${a.port}`),
  },
  {
    section: "dns", name: "timeout", type: "integer (milliseconds)", default: 2000, min: 100, max: 30000,
    doc: "How long to wait for one answer from one server before trying again (the next server, or the same one).",
    check: integer(100, 30000),
  },
  {
    section: "dns", name: "attempts", type: "integer", default: 3, min: 1, max: 10,
    doc: "Tries per question, across the servers, before it is a temporary DNS error.",
    check: integer(1, 10),
  },
  {
    section: "dns", name: "cache_size", type: "integer", default: 10000, min: 0, max: 1000000,
    doc: "Answers kept in the cache (per worker thread), each for its TTL (at most a day); negative answers for at most 5 minutes. 0 turns the cache off.",
    check: integer(0, 1000000),
  },
  {
    section: "dns", name: "trust_ad", type: "string", default: "loopback", values: ["loopback", "always", "never"],
    doc: 'Whose AD bit (answer validated with DNSSEC) to believe; DANE and the MX "secure" flag rest on it. "loopback": only when every DNS server is on loopback (a validating resolver on this host); "always": the servers even when not on loopback (the path to them must be trusted, RFC 4035 §4.9.3); "never": DANE off. When the AD bit is not believed, DANE is off and a warning is logged at start-up.',
    check: oneOf(["loopback", "always", "never"]),
  },
];
