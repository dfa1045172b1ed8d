# Handlers of the shell runtime (bootstrap) that call the delayed server of
# tests/support/downstream_server.rs (`GET /<ms>` answered after ms milliseconds) with the
# curl CLI: each call its own curl process, a child of the runtime shell.
. "$LAMBDA_TASK_ROOT/function.sh"

# `calls` curls of http://host:port/<ms>; the result says how many answered.
curls() {
    local event=$1 i=0 n url
    n=$(field "$event" calls)
    url="http://$(field "$event" host):$(field "$event" port)/$(field "$event" ms)"
    while [ "$i" -lt "$n" ]; do
        curl -sS -f -o /dev/null "$url" || return 1
        i=$((i + 1))
    done
    printf '{"calls":%d}' "$n"
}
