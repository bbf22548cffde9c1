#!/usr/bin/env bash
# Installs the Debian packages that Wardmail's integration tests and benchmarks
# use as real peers (swaks, openssl, GNU gsasl, Postfix with smtp-source, Dovecot's imap
# as a Maildir reader and its LMTP server, socat, Knot DNS (knotd, kdig) as a local authoritative
# DNS server for sender authentication, dkimpy's dkimsign/dkimverify, unbound
# as a validating resolver and ldns-signzone for DNSSEC-signed test zones (DANE),
# testssl.sh for the TLS scan of our listeners, systemd for systemd-analyze
# verify/security on deploy/wardmail.service; no systemd needs to run).
# Idempotent: packages already present are not reinstalled; apt-get update runs
# only when something is missing. Needs root (CI and the dev machines are root).
set -euo pipefail

PKGS=(swaks libnet-ssleay-perl libio-socket-ssl-perl openssl postfix dovecot-imapd socat gsasl ca-certificates procps util-linux knot knot-dnsutils python3-dkim unbound ldnsutils dovecot-lmtpd testssl.sh systemd clamav-daemon rspamd gnupg sq dovecot-sqlite pebble)
# sqlite3: SQLite's own shell, reading the spool independently of our code (test/spool-encryption.test.ts, test/backup.test.ts).
PKGS+=(sqlite3)
# Info-ZIP's zip writes the encrypted archive of the attachment-policy tests (zip -e).
PKGS+=(zip)
PKGS+=(prometheus) # promtool check metrics (test/metrics.test.ts)
PKGS+=(curl) # fetches the MTA-STS policy and autoconfig from the HTTPS listener (test/https.test.ts)
PKGS+=(libxml2-utils) # xmllint: the autoconfig and Autodiscover XML is well-formed (test/https.test.ts)
# Bench peers: the stack an operator adds to Postfix for SPF, DKIM and DMARC (bench/stack.ts): opendkim (verify), opendmarc, policyd-spf; opendkim-tools for opendkim-testkey.
PKGS+=(opendkim opendkim-tools opendmarc postfix-policyd-spf-python)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: all test peers present (${PKGS[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: missing ${missing[*]} and not root; run as root or install them yourself" >&2
  exit 1
fi

echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks questions at install time; answer them before it does.
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string wardmail-test.localdomain" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A service the machine already ran is never touched. A service whose package
# this very run installed (the install may have started it) is stopped and
# disabled only in CI (CI=true) or when asked (WARDMAIL_STOP_NEW_SERVICES=1);
# otherwise it is left as the package set it up, and the tests run their own
# instances on high loopback ports anyway.
stop_new=0
if [ "${CI:-}" = "true" ] || [ "${WARDMAIL_STOP_NEW_SERVICES:-}" = "1" ]; then stop_new=1; fi
just_installed() { local p; [ "$stop_new" = 1 ] || return 1; for p in "${missing[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
stop_service() {
  local name=$1
  if command -v systemctl >/dev/null; then
    systemctl stop "$name" >/dev/null 2>&1 || true
    systemctl disable "$name" >/dev/null 2>&1 || true
  fi
  if [ -x "/etc/init.d/$name" ]; then
    "/etc/init.d/$name" stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null; then update-rc.d "$name" disable >/dev/null 2>&1 || true; fi
  fi
}
# Tests run their own instances on high loopback ports (test/peers/*.ts).
if just_installed postfix; then stop_service postfix; fi
if just_installed dovecot-imapd || just_installed dovecot-lmtpd; then stop_service dovecot; fi
if just_installed knot; then stop_service knot; fi
if just_installed unbound; then stop_service unbound; fi
if just_installed clamav-daemon; then stop_service clamav-daemon; stop_service clamav-freshclam; fi
if just_installed rspamd; then stop_service rspamd; fi
if just_installed prometheus; then stop_service prometheus; fi
if just_installed opendkim; then stop_service opendkim; fi
if just_installed opendmarc; then stop_service opendmarc; fi
echo "install-peers: done"
