#!/bin/sh
# Lays out a lambda-meter layer directory as Lambda mounts it under /opt:
#   DIR/lambda-meter                 the wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter)
#                                    (with the libraries' ELF signature and the dynamic
#                                    loader their machine needs written in, so that it checks
#                                    the machine without reading a file at every cold start)
#   DIR/lib/liblambda_meter.so       the library it preloads
#   DIR/lib/glibc-2.34/liblambda_meter.so  when LIBRARY_2_34 is given: the same
#                                    library built for glibc 2.34, which the wrapper prefers
#                                    where the system's glibc is 2.34 or later (it needs
#                                    neither libpthread.so.0 nor libdl.so.2 there)
#   DIR/python/lambda_meter/         the Python shim for custom metrics (layer/shims)
#   DIR/ruby/lib/lambda_meter.rb     the Ruby shim
#   DIR/nodejs/node_modules/lambda-meter/  the Node.js shim (over the channel)
#   DIR/bin/lambda-meter.sh          the shell shim (over the channel; /opt/bin is on PATH)
#   DIR/java/lib/lambda-meter.jar    the Java shim (over the channel; needs javac to build)
# usage: layer/assemble.sh LIBRARY DIR [LIBRARY_2_34]
set -eu
[ "$#" -eq 2 ] || [ "$#" -eq 3 ] || { echo "usage: $0 LIBRARY DIR [LIBRARY_2_34]" >&2; exit 2; }
lib=$1
dir=$2
lib234=${3:-}
here=$(dirname "$0")
for l in "$lib" $lib234; do
    [ -f "$l" ] || { echo "$0: $l not found" >&2; exit 1; }
done
rm -rf "$dir"
mkdir -p "$dir/lib"

# The ELF signature of library $1 as the wrapper's lm_elf reads it: "class/data/version machine".
signature() {
    # shellcheck disable=SC2046
    set -- $(od -An -tu4 -N20 -v "$1")
    echo "$(($2 & 16777215)) $(($5 >> 16))"
}
sig=$(signature "$lib")
if [ -n "$lib234" ] && [ "$(signature "$lib234")" != "$sig" ]; then
    echo "$0: $lib and $lib234 are not for the same machine" >&2
    exit 1
fi
case ${sig#* } in
    62) loader=/lib64/ld-linux-x86-64.so.2 ;;
    183) loader=/lib/ld-linux-aarch64.so.1 ;;
    *) loader= ;;
esac
# The wrapper, with its libraries' machine written in (lm_layer_sig, lm_layer_loader): it
# checks the machine with one `test` of that loader, reading no file at a cold start.
if [ -n "$loader" ]; then
    sed -e "s|^lm_layer_sig=\$|lm_layer_sig='$sig'|" \
        -e "s|^lm_layer_loader=\$|lm_layer_loader='$loader'|" \
        "$here/../wrapper/lambda-meter" >"$dir/lambda-meter"
    grep -q "^lm_layer_loader='$loader'\$" "$dir/lambda-meter" ||
        { echo "$0: the wrapper has no lm_layer_loader= line to fill in" >&2; exit 1; }
else
    cp "$here/../wrapper/lambda-meter" "$dir/lambda-meter"
fi
# Without its comments and blank lines (but a line saying where they are): the shell reads
# every byte of the script at every cold start, at about 40 instructions a byte.
sed -e '1!{/^[[:space:]]*#/d;/^[[:space:]]*$/d;}' \
    -e '1a\
# lambda-meter exec wrapper; its source, with comments: wrapper/lambda-meter' \
    "$dir/lambda-meter" >"$dir/lambda-meter.tmp"
mv "$dir/lambda-meter.tmp" "$dir/lambda-meter"
chmod 0755 "$dir/lambda-meter"

cp "$lib" "$dir/lib/liblambda_meter.so"
chmod 0644 "$dir/lib/liblambda_meter.so"
if [ -n "$lib234" ]; then
    mkdir -p "$dir/lib/glibc-2.34"
    cp "$lib234" "$dir/lib/glibc-2.34/liblambda_meter.so"
    chmod 0644 "$dir/lib/glibc-2.34/liblambda_meter.so"
fi
# Not the dynamic loader among the libraries it needs (see layer/unneed-loader.py).
python3 "$here/unneed-loader.py" "$dir/lib/liblambda_meter.so" ${lib234:+"$dir/lib/glibc-2.34/liblambda_meter.so"}
# The language shims for custom metrics, where each runtime looks for a layer's code
# (python/, nodejs/node_modules/ and ruby/lib/: /opt/python, /opt/nodejs/node_modules and
# /opt/ruby/lib are on those runtimes' paths).
cp -R "$here/shims/." "$dir/"
# The Java shim, compiled for Java 11 and up into java/lib (on the Java runtime's classpath),
# zipped with fixed timestamps like the layer itself.
if command -v javac >/dev/null 2>&1; then
    classes=$(mktemp -d)
    javac --release 11 -d "$classes" "$here/shims-src/java/lambdameter/LambdaMeter.java"
    mkdir -p "$dir/java/lib"
    python3 "$here/mkzip.py" "$classes" "$dir/java/lib/lambda-meter.jar"
    rm -rf "$classes"
fi
find "$dir" -type d -exec chmod 0755 {} +
find "$dir" -name '*.py' -exec chmod 0644 {} +
find "$dir" -name '*.rb' -exec chmod 0644 {} +
find "$dir" -name '*.js' -exec chmod 0644 {} +
find "$dir" -name '*.sh' -exec chmod 0644 {} +
find "$dir" -name '*.jar' -exec chmod 0644 {} +
