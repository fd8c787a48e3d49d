#!/bin/sh
# DEVELOPMENT secrets for deploy/docker-compose.yml: the files tsa.container.toml expects under
# /etc/sigillum, made from `tsa init`'s development PKI (its root CA doubles as the email CA).
# NOT for production: there the TSA key and certificate come from your PKI or HSM.
#
#   TSA=path/to/tsa sh deploy/make-dev-secrets.sh [DIR]     (DIR: deploy/secrets by default)
#
# tests/tests/deploy.rs runs this script and starts `tsa serve` on what it made.
set -eu

dir=${1:-$(dirname "$0")/secrets}
tsa=${TSA:-tsa}
umask 077

if [ -e "$dir/tsa.key" ]; then
    echo "make-dev-secrets: $dir/tsa.key exists; nothing changed" >&2
    exit 1
fi
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

"$tsa" init --data-dir "$work/pki" >/dev/null
cp "$work/pki/tsa.key" "$dir/tsa.key"
cp "$work/pki/tsa.pem" "$dir/tsa.pem"
cp "$work/pki/root.pem" "$dir/chain.pem"
cp "$work/pki/root.key" "$dir/mail-ca.key"
cp "$work/pki/root.pem" "$dir/mail-ca.pem"
# 32 random bytes, shared by every node of the CA.
head -c 32 /dev/urandom >"$dir/enrolment.key"

echo "Development secrets in $dir (mode 0600). Trust anchor for 'stamp verify': $dir/chain.pem"
echo "For docker compose, the image's user (uid 10001) must read them: sudo chown -R 10001:10001 $dir"
