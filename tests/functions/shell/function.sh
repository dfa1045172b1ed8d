# The test event protocol of tests/functions/python/handler.py, in bash. The result goes to
# stdout; a failure prints its error type on stderr and returns 1.
field() {
    printf '%s' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# OWN_TICKS: this shell's own CPU time so far (utime + stime in /proc, in clock ticks), read
# without starting a process.
own_ticks() {
    local stat
    local -a fields
    read -r stat <"/proc/$BASHPID/stat"
    # Fields from the 3rd (state) on, after the command name's closing parenthesis.
    read -r -a fields <<<"${stat##*) }"
    OWN_TICKS=$((fields[11] + fields[12]))
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
        # The runtime ends without a result (`make bench` ends its traced runs this way).
        exit) exit "$(field "$event" code)" ;;
        burn)
            # CPU of the shell itself (no child process): rounds of arithmetic until its own
            # CPU time has grown by "ticks" clock ticks, however fast the machine. The result
            # says how many ticks and how long a tick is, never how long the burn took.
            local i want start
            want=$(field "$event" ticks)
            own_ticks
            start=$OWN_TICKS
            while own_ticks && [ $((OWN_TICKS - start)) -lt "${want:-5}" ]; do
                i=0
                while [ "$i" -lt 1000 ]; do i=$((i + 1)); done
            done
            printf '{"ticks":%d,"clk_tck":%d}' "${want:-5}" "$(getconf CLK_TCK)"
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
