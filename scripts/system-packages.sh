#!/usr/bin/env bash
# Installs the system tools the test suite needs on a fresh Debian machine:
#   openssh-server  (/usr/sbin/sshd, ssh-keygen)  - real SFTP server for the exchange tests
#   xmlsec1         (xmlsec1)                     - independent check of XML signatures
#   openssl         (openssl)                     - certificates and keys for the fixtures
#   libxml2-utils   (xmllint)                     - independent XSD validation
#   postgresql      (/usr/lib/postgresql/*/bin/{initdb,postgres,pg_ctl}) - warehouse tests
#   chromium        (/usr/bin/chromium)           - officers' view of Prefect's UI, in a real browser
#
# Idempotent and silent when everything is already there (no apt call at all).
# Never leaves a service running: package maintainer scripts are told not to start
# anything (policy-rc.d), and any system sshd that still ends up listening on port 22
# is stopped through its pid file.
set -euo pipefail

missing=()

have_cmd() { command -v "$1" >/dev/null 2>&1; }

have_postgres() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/postgres" && -x "$d/pg_ctl" ]]; then
            return 0
        fi
    done
    return 1
}

{ [[ -x /usr/sbin/sshd ]] && have_cmd ssh-keygen; } || missing+=(openssh-server)
have_cmd xmlsec1 || missing+=(xmlsec1)
have_cmd openssl || missing+=(openssl)
have_cmd xmllint || missing+=(libxml2-utils)
have_postgres || missing+=(postgresql)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "system-packages.sh: missing system packages; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

# --- keep maintainer scripts from starting services -------------------------------
policy=/usr/sbin/policy-rc.d
backup=""
if [[ -e $policy ]]; then
    backup=$(mktemp /usr/sbin/policy-rc.d.system-packages.XXXXXX)
    cp -p "$policy" "$backup"
fi
cleanup() {
    if [[ -n $backup ]]; then
        mv -f "$backup" "$policy"
    else
        rm -f "$policy"
    fi
}
trap cleanup EXIT
printf '#!/bin/sh\n# temporary, written by scripts/system-packages.sh\nexit 101\n' >"$policy.new"
chmod 0755 "$policy.new"
mv -f "$policy.new" "$policy"

echo "system-packages.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# --- make sure no system sshd is left listening on port 22 -------------------------
port22_listening() {
    # 0016 = port 22, state 0A = LISTEN, in /proc/net/tcp{,6}
    awk 'NR > 1 && $4 == "0A" && $2 ~ /:0016$/ { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
for pidfile in /run/sshd.pid /var/run/sshd.pid; do
    if [[ -s $pidfile ]]; then
        pid=$(cat "$pidfile")
        if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sshd ]]; then
            kill "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    fi
done
if port22_listening; then
    sleep 1
    if port22_listening; then
        echo "system-packages.sh: warning: something is still listening on port 22" >&2
    fi
fi

# --- verify --------------------------------------------------------------------------
fail=0
[[ -x /usr/sbin/sshd ]] || { echo "system-packages.sh: /usr/sbin/sshd still missing" >&2; fail=1; }
for c in ssh-keygen xmlsec1 openssl xmllint; do
    have_cmd "$c" || { echo "system-packages.sh: $c still missing" >&2; fail=1; }
done
have_postgres || { echo "system-packages.sh: PostgreSQL server binaries still missing" >&2; fail=1; }
[[ -x /usr/bin/chromium ]] || { echo "system-packages.sh: /usr/bin/chromium still missing" >&2; fail=1; }
exit $fail
