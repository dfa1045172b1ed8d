# The test event protocol of tests/functions/python/handler.py, in bash. The result goes to
# stdout; a failure prints its error type on stderr and returns 1.
field() {
    printf '%s' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

handler() {
    local event=$1 action
    action=$(field "$event" action)
    case "${action:-ok}" in
        ok) printf '{"ok":true}' ;;
        sleep)
            sleep "$(awk -v ms="$(field "$event" ms)" 'BEGIN { printf "%.3f", ms / 1000 }')"
            printf '{"slept_ms":%s}' "$(field "$event" ms)"
            ;;
        fail)
            printf '%s' "$(field "$event" type)" >&2
            return 1
            ;;
        big)
            printf '"'
            head -c "$(field "$event" bytes)" /dev/zero | tr '\0' x
            printf '"'
            ;;
        echo) printf '{"size":%d}' "${#event}" ;;
        partial) printf '{"partial":true}' ;;
        burn)
            # CPU of the shell itself (no child process): "n" rounds of arithmetic.
            local i=0 n
            n=$(field "$event" n)
            while [ "$i" -lt "${n:-50000}" ]; do i=$((i + 1)); done
            printf '{"rounds":%d}' "$i"
            ;;
        custom)
            # The layer's shim (on PATH); each call's status after the handler's result.
            . lambda-meter.sh
            local statuses=""
            lambda_meter_metric OrdersPlaced 2 Count; statuses="$statuses$?,"
            lambda_meter_metric OrdersPlaced 3 Count; statuses="$statuses$?,"
            lambda_meter_dimension tenant acme; statuses="$statuses$?,"
            lambda_meter_property order '{"id":7}'; statuses="$statuses$?,"
            lambda_meter_metric 'bad"name' 1 Count; statuses="$statuses$?,"
            lambda_meter_metric Fine x Count; statuses="$statuses$?"
            printf '{"statuses":[%s]}' "$statuses"
            ;;
        *)
            printf 'UnknownAction' >&2
            return 1
            ;;
    esac
}
