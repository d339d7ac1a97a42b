#!/bin/sh
# Set netplay up on this machine, from this checkout: the Debian or Ubuntu
# packages it uses (apt-get, through sudo for an ordinary user), netplay in
# a virtual environment of its own (.venv here: these systems refuse
# `pip install` into their own Python, PEP 668), and the `netplay` command
# on PATH (/usr/local/bin for root, ~/.local/bin for a user).  Run it again
# at any time: it installs only what is missing.
#
#   ./install.sh            # to use netplay
#   ./install.sh --test     # also what its tests need (then: .venv/bin/python -m pytest)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
# what netplay runs (nft, ip, memcached for the book's www, OpenSSH's client for
# `netplay ssh`) and the clients the README and docs use in hosts
packages="python3-venv nftables iproute2 iputils-ping traceroute curl bind9-dnsutils openssl ca-certificates uidmap memcached openssh-client swaks libnet-ssleay-perl netcat-openbsd lftp inetutils-telnet"
extras=""

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

case "${1-}" in
    "") ;;
    --test)
        # the reference daemons the tests and benchmarks compare with, and their tools
        packages="$packages iperf3 procps passwd dovecot-imapd dovecot-pop3d postfix openssh-server vsftpd"
        extras="[test,dev]"
        ;;
    *) fail "unknown option ${1}: use --test to install what the tests need too, or nothing" ;;
esac

[ "$(uname -s)" = Linux ] || fail "netplay needs Linux (network namespaces); this is $(uname -s)"
command -v python3 >/dev/null || fail "python3 is missing: install Python 3.11 or newer"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "netplay needs Python 3.11 or newer; python3 is $(python3 -V 2>&1 | cut -d' ' -f2)"

# -- the system's packages -------------------------------------------------------
if command -v dpkg-query >/dev/null; then
    missing=""
    for package in $packages; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            as_root=""
        elif command -v sudo >/dev/null; then
            as_root="sudo"
        else
            fail "missing packages:$missing; install them as root (apt-get install$missing), then run this again"
        fi
        echo "installing:$missing"
        case "$missing " in  # Postfix for the tests' own instances: no machine-wide setup
            *" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" |
                $as_root debconf-set-selections ;;
        esac
        $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        $as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $missing >/dev/null
        # the daemons' packages start the machine's own service where services start
        # on install; netplay runs its own per host, never those: stop them
        # (only those installed now: a machine's own sshd that ran before stays)
        for pair in dovecot:dovecot postfix:postfix memcached:memcached openssh-server:ssh vsftpd:vsftpd; do
            service=${pair#*:}
            case "$missing " in *" ${pair%%:*}"*) ;; *) continue ;; esac
            if command -v systemctl >/dev/null && systemctl is-enabled --quiet "$service" 2>/dev/null; then
                now=""
                [ -d /run/systemd/system ] && now="--now" # systemd is running: stop it too
                # shellcheck disable=SC2086 # no word when empty
                $as_root systemctl disable $now --quiet "$service"
                echo "disabled the machine's own $service service (netplay runs its own per host)"
            fi
        done
    fi
else
    echo "not a Debian or Ubuntu system: make sure these are installed: $packages"
fi

# -- netplay, in its own virtual environment -----------------------------------------
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" ||
    fail "could not make a virtual environment in $venv (is python3-venv installed?)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here$extras"
# pip compiles what it installs, but leaves an editable install's own modules to their
# first import: compiled now, they cost nothing at each start where the checkout is not
# writable (a rootless user's, of root's install) or PYTHONDONTWRITEBYTECODE is set
"$venv/bin/python" -m compileall -q "$here/src" > /dev/null ||
    fail "could not compile netplay's modules in $here/src"

# -- the command, on PATH -------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    bin=/usr/local/bin
else
    bin="$HOME/.local/bin"
    mkdir -p "$bin"
fi
link="$bin/netplay"
if [ -e "$link" ] && [ ! -L "$link" ]; then
    fail "$link exists and is not a link to a checkout's netplay: remove it, then run this again"
fi
if [ -L "$link" ] && [ "$(readlink "$link")" != "$venv/bin/netplay" ]; then
    echo "$link pointed to $(readlink "$link"); now to this checkout's"
fi
ln -sfn "$venv/bin/netplay" "$link"

echo "netplay $("$venv/bin/netplay" --version 2>/dev/null | cut -d' ' -f2) is installed in $venv"
case ":$PATH:" in
    *":$bin:"*) echo "next: netplay up" ;;
    *) echo "next: log in again (~/.profile adds $bin to PATH once it exists) or export PATH=\"$bin:\$PATH\", then: netplay up" ;;
esac
