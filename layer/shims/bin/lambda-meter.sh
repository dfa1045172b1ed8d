# Custom metrics for shell runtimes, written in lambda-meter's record of the invoke.
#
#   . lambda-meter.sh                       # /opt/bin is on PATH; the wrapper adds it too
#   lambda_meter_metric OrdersPlaced 2 Count
#   lambda_meter_dimension tenant acme
#   lambda_meter_property orderId 1002      # the value is JSON: 1002, '"text"', '{"id":7}'
#
# A shell cannot call C, so each call appends one JSON line to the file named by
# LAMBDA_METER_CHANNEL (the library's channel, read when the invoke's record is made; without
# the wrapper, with the library in LD_PRELOAD, $TMPDIR/.lambda-meter-<this shell's pid>.channel) with
# shell builtins only: no process is started. The line names the invoke by $REQUEST_ID (the
# variable of the AWS custom-runtime tutorial's bootstrap) or $LAMBDA_METER_REQUEST_ID, since
# the process that posts the result (curl) is not the one that runs the handler.
#
# Return status: 0 written, 1 bad name, 2 bad value, 3 bad unit, 4 the channel could not be
# written, 100 no lambda-meter here (the layer is absent: nothing kept, the same script runs).
# Names and values with a quote, a backslash or a control character are refused (1 or 2):
# the library checks everything else, as for the other languages.

lambda_meter__line() {
    lambda_meter__path=${LAMBDA_METER_CHANNEL:-}
    if [ -z "$lambda_meter__path" ]; then
        case ${LD_PRELOAD:-} in
        *liblambda_meter*) lambda_meter__path="${TMPDIR:-/tmp}/.lambda-meter-$$.channel" ;;
        *) return 100 ;;
        esac
    fi
    lambda_meter__id=${LAMBDA_METER_REQUEST_ID:-${REQUEST_ID:-}}
    if [ -n "$lambda_meter__id" ]; then
        case $lambda_meter__id in *[\"\\]* | *[[:cntrl:]]*) lambda_meter__id= ;; esac
    fi
    if [ -n "$lambda_meter__id" ]; then
        printf '{%s,"requestId":"%s"}\n' "$1" "$lambda_meter__id" >>"$lambda_meter__path" 2>/dev/null || return 4
    else
        printf '{%s}\n' "$1" >>"$lambda_meter__path" 2>/dev/null || return 4
    fi
}

lambda_meter__plain() {
    case $1 in "" | *[\"\\]* | *[[:cntrl:]]*) return 1 ;; esac
}

# lambda_meter_metric NAME VALUE [UNIT]
lambda_meter_metric() {
    lambda_meter__plain "$1" || return 1
    case ${2:-} in "" | *[!0-9.eE+-]*) return 2 ;; esac
    lambda_meter__plain "${3:-None}" || return 3
    lambda_meter__line "\"metric\":\"$1\",\"value\":$2,\"unit\":\"${3:-None}\""
}

# lambda_meter_dimension KEY VALUE
lambda_meter_dimension() {
    lambda_meter__plain "$1" || return 1
    lambda_meter__plain "${2:-}" || return 2
    lambda_meter__line "\"dimension\":\"$1\",\"value\":\"$2\""
}

# lambda_meter_property KEY JSON
lambda_meter_property() {
    lambda_meter__plain "$1" || return 1
    case ${2:-} in "" | *[[:cntrl:]]*) return 2 ;; esac
    lambda_meter__line "\"property\":\"$1\",\"value\":$2"
}
