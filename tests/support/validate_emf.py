"""Validates EMF lines (one JSON object per line on stdin) against the CloudWatch EMF schema
and the cross-reference rules its description states but JSON Schema cannot express.

Usage: python validate_emf.py SCHEMA.json < lines
Prints "valid N" and exits 0, or prints every problem and exits 1.
"""

import json
import sys

import jsonschema


def cross_reference_problems(record):
    problems = []
    for directive in record["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                value = record.get(key)
                if not isinstance(value, str):
                    problems.append(f"dimension {key!r} is not a string member of the root")
                elif len(value) > 1024:
                    problems.append(f"dimension {key!r} value longer than 1024")
        for metric in directive["Metrics"]:
            name = metric["Name"]
            value = record.get(name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(value, list):
                ok = 0 < len(value) <= 100 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
                )
            if not ok:
                problems.append(f"metric {name!r} has no numeric value in the root")
    return problems


def main():
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    failed = False
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        count += 1
        if len(line.encode()) > 1024 * 1024:
            print(f"line {n}: longer than 1 MB")
            failed = True
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            print(f"line {n}: not JSON: {e}")
            failed = True
            continue
        for err in validator.iter_errors(record):
            print(f"line {n}: {err.message} at {list(err.absolute_path)}")
            failed = True
        if not failed:
            for p in cross_reference_problems(record):
                print(f"line {n}: {p}")
                failed = True
    print(f"valid {count}" if not failed else "invalid")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
