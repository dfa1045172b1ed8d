"""No-op handlers for `make bench`: the same work with no metrics, with Powertools for AWS
Lambda Metrics, and with aws-embedded-metrics, each emitting one metric per invoke."""

import os
import resource
import time

from aws_embedded_metrics import metric_scope
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def library_kb():
    """Resident KiB of lambda-meter's own mappings (its file's pages, and those it wrote)."""
    kb, ours = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                ours = "liblambda_meter" in line
            elif ours and fields[0] == "Rss:":
                kb += int(fields[1])
    return kb


def noop(event, context):
    if event.get("action") == "sleep":
        # `make bench` starts its counted runs with one (see bench/src/main.rs, run_under).
        time.sleep(event.get("ms", 0) / 1000)
        return {}
    if event.get("action") == "rss":
        return {"rssKb": rss_kb(), "libraryKb": library_kb()}
    if event.get("action") == "exit":
        # `make bench` ends its callgrind runs this way (callgrind writes its counts at exit).
        os._exit(0)
    return {}


metrics = Metrics(namespace="Bench", service="bench")


@metrics.log_metrics(capture_cold_start_metric=True)
def powertools(event, context):
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    return noop(event, context)


@metric_scope
def emf(event, context, metrics):
    metrics.put_metric("Invocations", 1, "Count")
    return noop(event, context)
