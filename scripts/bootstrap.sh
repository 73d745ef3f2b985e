#!/usr/bin/env bash
# Shared set-up for scripts/demo and scripts/test: system packages (when root), a virtualenv
# in .venv with rbac-migrate installed. Usage: source scripts/bootstrap.sh EXTRA_DEB... 
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RBAC_MIGRATE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

missing_debs() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

need_binary_or_package() {  # binary package...: the package is only wanted when the binary is absent
    local binary="$1"; shift
    if ! command -v "$binary" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$binary" ]; then
        missing_debs "$@"
    fi
}

install_system_packages() {
    local wanted=()
    mapfile -t wanted < <(
        need_binary_or_package slapd slapd
        need_binary_or_package ldapsearch ldap-utils
        need_binary_or_package openssl openssl
        "$PYTHON" -m venv --help >/dev/null 2>&1 || echo python3-venv
        # python-ldap (fast bulk reads) compiles against libldap.
        missing_debs libldap2-dev libsasl2-dev gcc
        "$PYTHON" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
            2>/dev/null || echo python3-dev
        for extra in "$@"; do echo "$extra"; done
    )
    [ "${#wanted[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "rbac-migrate needs these system packages: ${wanted[*]}" >&2
        echo "install them with: sudo apt-get install -y ${wanted[*]}" >&2
        exit 1
    fi
    echo "installing system packages: ${wanted[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${wanted[@]}" >&2
}

make_venv() {  # extras
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    if ! "$VENV/bin/python" -m pip install -q -e "$ROOT[fast,$1]" >&2; then
        echo "python-ldap could not be built; continuing with ldap3 only (slower snapshots)" >&2
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$1]" >&2
    fi
}
