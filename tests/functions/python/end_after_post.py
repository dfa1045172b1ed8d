"""A handler for the Python runtime client (awslambdaric) that ends the process after its
result was posted and before the client asks for the next event: the moment lambda-meter keeps
the finished invoke's record in memory, waiting for the next GET /next
(tests/records_survive.rs).

The event says how: {"then": HOW} with HOW one of
  "_exit"        os._exit(0) on the main thread
  "thread_exit"  os._exit(0) from another thread (the main thread waits for it)
  "exit"         sys.exit(0): a normal interpreter exit
  "term"         SIGTERM to itself, default disposition
  "abort"        os.abort()
  "segv"         SIGSEGV to itself, default disposition
and {"fail": "Type"} raises instead of returning (the error is posted, then the ending);
{"burn_ms": N} first spends N ms of the process's CPU time.

The ending runs where the client's loop asks for the next event: `wait_next_invocation` is
wrapped so that a pending ending happens first, once the result or error is posted.
"""

import os
import signal
import sys
import threading
import time

from awslambdaric import lambda_runtime_client

# The ending the last invoke asked for, done before the next /next.
PENDING = []

_wait_next = lambda_runtime_client.BaseLambdaRuntimeClient.wait_next_invocation


def _end(how):
    sys.stdout.flush()
    if how == "_exit":
        os._exit(0)
    if how == "thread_exit":
        t = threading.Thread(target=os._exit, args=(0,))
        t.start()
        t.join()
        time.sleep(30)
    if how == "exit":
        sys.exit(0)
    if how == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    if how == "abort":
        os.abort()
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(30)
    raise ValueError(f"unknown ending {how!r}")


def _end_then_wait_next(self):
    if PENDING:
        _end(PENDING.pop())
    return _wait_next(self)


lambda_runtime_client.BaseLambdaRuntimeClient.wait_next_invocation = _end_then_wait_next


class OrderNotFound(Exception):
    pass


def handler(event, context):
    if event.get("burn_ms"):
        until = time.process_time() + event["burn_ms"] / 1000.0
        while time.process_time() < until:
            pass
    if event.get("then"):
        PENDING.append(event["then"])
    if event.get("fail"):
        raise OrderNotFound("failing on purpose")
    return {"ok": True, "requestId": context.aws_request_id}
