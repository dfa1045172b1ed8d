"""A handler for the custom-metrics channel (src/glue/channel.rs): values written by hand
to LAMBDA_METER_CHANNEL, as any language can, one JSON line per value with this process's id.

`handler` does what the event asks:
  {"mine": "Name", "value": 7, "before_ms": 0, "after_ms": 0, "filler": 0, "filler_bytes": 0}
      sleeps before_ms, appends `filler` property lines of about filler_bytes bytes each (other
      values of this invoke), then the metric Name = value, then sleeps after_ms; returns this
      worker's pid. Without "mine", no metric line.
  {"mine": "Name", "value": 7, "first": true, ...}
      the same with the metric line written before the filler.
  {"keep": true, ...}
      the same, written through one file object opened once per worker and kept open (as a
      logger, or Node's fs.createWriteStream, keeps its file), flushed after each line.
  {"other_pid": true, ...}
      the filler lines carry pid 1: another process's lines, which this one leaves alone.
"""

import json
import os
import time

KEPT = None


def handler(event, context):
    path = os.environ.get("LAMBDA_METER_CHANNEL")
    time.sleep(event.get("before_ms", 0) / 1000.0)
    pid = os.getpid()
    lines = []
    filler_pid = 1 if event.get("other_pid") else pid
    filler = [
        json.dumps({"property": "filler%d" % i, "value": "x" * event.get("filler_bytes", 0), "pid": filler_pid})
        for i in range(event.get("filler", 0))
    ]
    mine = []
    if "mine" in event:
        mine = [json.dumps({"metric": event["mine"], "value": event.get("value", 1), "pid": pid})]
    lines = mine + filler if event.get("first") else filler + mine
    global KEPT
    if path and lines and event.get("keep"):
        if KEPT is None:
            KEPT = open(path, "a")
        for line in lines:
            KEPT.write(line + "\n")
            KEPT.flush()
    elif path and lines:
        # One append per line (open, write, close), as the shims do.
        for line in lines:
            with open(path, "a") as channel:
                channel.write(line + "\n")
    time.sleep(event.get("after_ms", 0) / 1000.0)
    return {"pid": pid}
