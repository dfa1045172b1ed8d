#!/bin/sh
# Installs everything the tests and the demo need, idempotently: system packages that are
# missing, and a Python virtual environment with the packages in tests/requirements.txt.
set -eu
cd "$(dirname "$0")/.."

need_apt=
for tool in cc dash od python3; do
    command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
if [ -n "$need_apt" ]; then
    echo "setup: installing system packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc dash coreutils python3 python3-venv >/dev/null
fi

venv=target/test-env/venv
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
    echo "setup: creating the Python test environment in $venv"
    rm -rf "$venv"
    mkdir -p target/test-env
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$stamp"
fi
