#!/usr/bin/env bash
# Installs the Debian packages that Wardmail's integration tests and benchmarks
# use as real peers (swaks, openssl, GNU gsasl, Postfix with smtp-source, Dovecot's imap
# as a Maildir reader and its LMTP server, socat, Knot DNS (knotd, kdig) as a local authoritative
# DNS server for sender authentication, dkimpy's dkimsign/dkimverify, unbound
# as a validating resolver and ldns-signzone for DNSSEC-signed test zones (DANE)).
# Idempotent: packages already present are not reinstalled; apt-get update runs
# only when something is missing. Needs root (CI and the dev machines are root).
set -euo pipefail

PKGS=(swaks libnet-ssleay-perl libio-socket-ssl-perl openssl postfix dovecot-imapd socat gsasl ca-certificates procps util-linux knot knot-dnsutils python3-dkim unbound ldnsutils dovecot-lmtpd)

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
# The package starts nothing here (no systemd), but make sure the system
# instance is not running: tests run their own instances on high ports.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
# Dovecot is only used as a reader of Wardmail's Maildirs (its imap binary in
# PREAUTH mode); no daemon is wanted.
if command -v doveadm >/dev/null && pgrep -x dovecot >/dev/null 2>&1; then doveadm stop >/dev/null 2>&1 || true; fi
# Knot: tests and the benchmark run their own knotd (test/peers/knot.ts) on a
# high loopback port; the system service must neither run nor start at boot.
if command -v systemctl >/dev/null; then
  systemctl stop knot >/dev/null 2>&1 || true
  systemctl disable knot >/dev/null 2>&1 || true
fi
# Without systemd the package's SysV script may have started it.
if [ -x /etc/init.d/knot ]; then
  /etc/init.d/knot stop >/dev/null 2>&1 || true
  if command -v update-rc.d >/dev/null; then update-rc.d knot disable >/dev/null 2>&1 || true; fi
fi
# unbound: tests run their own validating instance (test/peers/unbound.ts).
if command -v systemctl >/dev/null; then
  systemctl stop unbound >/dev/null 2>&1 || true
  systemctl disable unbound >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/unbound ]; then
  /etc/init.d/unbound stop >/dev/null 2>&1 || true
  if command -v update-rc.d >/dev/null; then update-rc.d unbound disable >/dev/null 2>&1 || true; fi
fi
echo "install-peers: done"
