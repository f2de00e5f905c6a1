#!/usr/bin/env bash
# Installs what the local stack and the tests need, only what is missing (idempotent):
# redis-server, openssl and the DejaVu font (Debian), a project-local Python venv with moto[server]
# cfn-lint and AWS's SAM translator (cargo-lambda and zig are added by infra/build-lambdas.sh when first needed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "setup: installing openssl (the local TLS redis needs a certificate)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
fi

if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "setup: installing fonts-dejavu-core (the benchmark plots' font)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null; }
fi

if [ ! -x "$venv/bin/moto_server" ]; then
  echo "setup: creating $venv with moto[server]"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*'
fi

if [ ! -x "$venv/bin/cfn-lint" ]; then
  echo "setup: installing cfn-lint into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'cfn-lint>=1'
fi

if ! "$venv/bin/python" -c 'import samtranslator' 2>/dev/null; then
  echo "setup: installing aws-sam-translator into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'aws-sam-translator>=1.90'
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is required (rustup toolchain)" >&2
  exit 1
fi
echo "setup: ok (redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)'))"
