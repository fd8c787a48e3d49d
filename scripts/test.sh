#!/usr/bin/env bash
# The one test command (the README shows it; CI runs it through .ci/run).
#
# Installs what the tests need when it is missing (openssl, PostgreSQL, Python's rfc3161-client,
# rfc3161ng, pyasn1-modules and cryptography, libfaketime, util-linux, e2fsprogs, and the PDF
# peers: poppler-utils, qpdf, libnss3-tools, pyHanko, pyhanko-cli and reportlab), makes sure
# PostgreSQL listens on 127.0.0.1:5432 with a database `test`, then builds the binaries, runs every test, clippy and rustfmt. Idempotent: on a machine that has
# everything it installs nothing and touches no package index. Meant to run as root on a fresh
# Debian machine (CI); as another user it uses sudo for the installs, when there are any.
#
# Environment: TSA_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test) names the
# PostgreSQL server and administrative database the tests create their databases from;
# PYTHON (default python3) the interpreter of the PyPI round trip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)

section() { printf '\n==== %s ====\n' "$*"; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi
as_root() { if [ -n "$SUDO" ] || [ "$(id -u)" -eq 0 ]; then $SUDO "$@"; else die "need root for: $*"; fi; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=yes
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

PYTHON=${PYTHON:-python3}
export PYTHON

section "System packages"
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
{ command -v psql >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; } \
    || missing+=(postgresql postgresql-client)
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
# libfaketime runs a server with its clock an hour fast (tests/tests/restart.rs).
ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing+=(faketime)
# prlimit lowers a running server's open-file limit (tests/tests/slow_clients.rs, EMFILE).
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
# The archive fault tests (tests/tests/archive_faults.rs) mount a tmpfs and an ext4 on a loop
# device, freeze it, and read the archive back with Python's sqlite3.
{ command -v losetup >/dev/null 2>&1 && command -v fsfreeze >/dev/null 2>&1; } || missing+=(util-linux)
command -v mount >/dev/null 2>&1 || missing+=(mount)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
# The PDF interop tests (tests/tests/pdf_interop.rs): poppler's pdfsig validates and signs,
# pdftoppm renders; qpdf checks every output (and tests/py/pdf_fixtures.py writes inputs with
# it); certutil and pk12util fill pdfsig's NSS database.
{ command -v pdfsig >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; } || missing+=(poppler-utils)
command -v qpdf >/dev/null 2>&1 || missing+=(qpdf)
{ command -v certutil >/dev/null 2>&1 && command -v pk12util >/dev/null 2>&1; } || missing+=(libnss3-tools)
# The HSM tests (tests/tests/hsm.rs): SoftHSM2 is the PKCS#11 token, OpenSC's pkcs11-tool makes
# keys inside it.
{ command -v softhsm2-util >/dev/null 2>&1 && ls /usr/lib/softhsm/libsofthsm2.so >/dev/null 2>&1; } || missing+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt_install "${missing[@]}"
else
    echo "openssl, a C compiler, PostgreSQL, Python, libfaketime, util-linux, e2fsprogs, poppler-utils, qpdf, libnss3-tools, softhsm2 and opensc are installed"
fi
openssl version

section "PostgreSQL"
if pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "something answers on 127.0.0.1:5432"
else
    version=$(ls /etc/postgresql | sort -V | tail -1)
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql"
    echo "starting PostgreSQL $version (cluster main)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    pg_isready -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up on 127.0.0.1:5432"
fi
if [ -z "${TSA_TEST_POSTGRES_URL:-}" ]; then
    TSA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    if ! psql -X -w -q -d "postgres://postgres@127.0.0.1:5432/postgres" -tAc 'SELECT 1' >/dev/null 2>&1; then
        # Debian's default pg_hba.conf asks for a password over TCP: give the postgres role one
        # (over the Unix socket, where the postgres OS user is trusted) and use it.
        echo "TCP login without a password refused; setting a password for the postgres role"
        as_root runuser -u postgres -- psql -X -w -q -c "ALTER ROLE postgres PASSWORD 'sigillum-test'"
        TSA_TEST_POSTGRES_URL="postgres://postgres:sigillum-test@127.0.0.1:5432/test"
    fi
fi
export TSA_TEST_POSTGRES_URL
admin_url="${TSA_TEST_POSTGRES_URL%/*}/postgres"
db_name="${TSA_TEST_POSTGRES_URL##*/}"
db_name="${db_name%%\?*}"
if [ "$(psql -X -w -q -d "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'")" != "1" ]; then
    echo "creating database $db_name"
    psql -X -w -q -d "$admin_url" -c "CREATE DATABASE \"$db_name\""
fi
psql -X -w -q -d "$TSA_TEST_POSTGRES_URL" -tAc 'SELECT version()'

section "Python packages (rfc3161-client, rfc3161ng, pyasn1-modules, cryptography, pyHanko, reportlab, aiosmtpd)"
# rfc3161-client and rfc3161ng are peers of the authority (tests/tests/pypi_client.rs);
# pyasn1-modules and cryptography check every key type's CMS signatures independently
# (tests/py/cms_signature_check.py); sqlite3 (standard library) reads the archive back in the
# archive fault tests. pyHanko (API and, from pyhanko-cli, `python3 -m pyhanko`) signs and validates
# PDFs as the reference PAdES implementation, and reportlab writes the fixture PDFs
# (tests/py/pdf_fixtures.py, pyhanko_sign.py, pdf_validate.py; tests/tests/pdf_interop.rs).
# aiosmtpd is the real SMTP server on loopback that receives the CA's enrolment codes
# (tests/tests/ca_enrol_mail.rs).
py_modules='import rfc3161_client, rfc3161ng, pyasn1, pyasn1_modules, cryptography, sqlite3, pyhanko.cli, reportlab, aiosmtpd, yaml'
if "$PYTHON" -c "$py_modules" >/dev/null 2>&1; then
    echo "already installed"
else
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    packages=(rfc3161-client rfc3161ng pyasn1 pyasn1-modules cryptography pyhanko pyhanko-cli reportlab aiosmtpd pyyaml)
    # Debian's own Python refuses system-wide pip installs (PEP 668) unless told otherwise.
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${packages[@]}" 2>/dev/null \
        || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages "${packages[@]}"
    "$PYTHON" -c "$py_modules" || die "a Python module is not importable after pip install ($py_modules)"
fi
"$PYTHON" -m pip show rfc3161-client rfc3161ng pyasn1-modules cryptography pyhanko pyhanko-cli reportlab aiosmtpd 2>/dev/null | grep -E '^(Name|Version):' || true

section "Rust toolchain"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "clippy/rustfmt missing and no rustup to add them"
    rustup component add clippy rustfmt
fi
cargo --version
cargo clippy --version
cargo fmt --version

section "Build: cargo build --workspace --bins"
cargo build --workspace --bins

section "Tests: cargo test --workspace"
cargo test --workspace --no-fail-fast

section "Lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "Format: cargo fmt --all --check"
cargo fmt --all --check

section "All passed in $(( $(date +%s) - started )) s"
