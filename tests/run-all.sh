#!/bin/sh
# Runs every test of the workspace, shows the output as it comes, and ends with one plain
# line that totals all the cargo test binaries: "tests: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
log=target/test-output.log
mkdir -p target
status_file=target/test-status
{ cargo test --workspace --no-fail-fast 2>&1; echo $? >"$status_file"; } | tee "$log"
status=$(cat "$status_file")
passed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    exit 1
fi
