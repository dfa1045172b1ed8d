#!/bin/sh
# Lays out a lambda-meter layer directory as Lambda mounts it under /opt:
#   DIR/lambda-meter                 the wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter)
#   DIR/lib/liblambda_meter.so       the library it preloads
# usage: layer/assemble.sh LIBRARY DIR
set -eu
[ "$#" -eq 2 ] || { echo "usage: $0 LIBRARY DIR" >&2; exit 2; }
lib=$1
dir=$2
here=$(dirname "$0")
[ -f "$lib" ] || { echo "$0: $lib not found" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/lib"
cp "$here/../wrapper/lambda-meter" "$dir/lambda-meter"
chmod 0755 "$dir/lambda-meter"
cp "$lib" "$dir/lib/liblambda_meter.so"
chmod 0644 "$dir/lib/liblambda_meter.so"
