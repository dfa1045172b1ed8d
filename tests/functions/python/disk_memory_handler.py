"""Handlers for tests/disk_memory_quiet.rs: a full /tmp, a capped address space, a long-lived
custom-metrics channel, and a look at the process's own file descriptors.

`dispatch` does what the event asks:
  {"action": "ok"}                  -> a small JSON result
  {"action": "sleep", "ms": 50}     -> sleeps, then returns
  {"action": "fill_tmp"}            -> writes $TMPDIR/filler until the file system is full
                                       (ENOSPC) and keeps it
  {"action": "channel", "lines": 10, "bytes": 1000}
                                    -> appends `lines` custom values (properties of about
                                       `bytes` bytes each, with this process's id) to
                                       LAMBDA_METER_CHANNEL by hand, when it is set
  {"action": "starve"}              -> caps the address space a little above its size, takes
                                       every byte malloc gives, counts that with a custom metric
                                       (the lambda_meter shim, as an `except MemoryError:` clause
                                       would), then frees everything and lifts the cap
  {"action": "hog"}                 -> allocates until MemoryError (under a cap set before the
                                       runtime started), catches it, frees, returns
  {"action": "fds", "open": 3}      -> opens `open` files, reports their numbers and every fd
                                       of the process, then closes them
"""

import ctypes
import json
import os
import resource
import time

try:
    import lambda_meter
except ImportError:
    lambda_meter = None

# The C allocator, and room for the pointers it gives while memory is being exhausted (made
# up front: nothing is allocated on the way).
LIBC = ctypes.CDLL(None)
LIBC.malloc.restype = ctypes.c_void_p
LIBC.malloc.argtypes = (ctypes.c_size_t,)
LIBC.free.restype = None
LIBC.free.argtypes = (ctypes.c_void_p,)
POINTERS = (ctypes.c_void_p * 65536)()
# Every size class malloc keeps apart, largest first, so none has a chunk left.
SIZES = [1 << 20, 64 << 10, 4 << 10] + list(range(2048, 0, -16))


def vm_size_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024


def starve():
    """Caps the address space a little above its size, takes every byte malloc can give (no
    Python object is made on the way: the pointers go into POINTERS), then counts the event with
    a custom metric; frees everything and lifts the cap. Returns whether malloc ran out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size_bytes() + (32 << 20), hard))
    taken = 0
    for size in SIZES:
        while taken < len(POINTERS):
            p = LIBC.malloc(size)
            if not p:
                break
            POINTERS[taken] = p
            taken += 1
    exhausted = taken < len(POINTERS)
    if lambda_meter is not None:
        try:
            lambda_meter.add_metric(b"OutOfMemory", b"Count", 1)
        except MemoryError:
            pass
    for i in range(taken):
        LIBC.free(POINTERS[i])
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return {"exhausted": exhausted}


def dispatch(event, context):
    action = event.get("action", "ok")
    if action == "ok":
        return {"ok": True}
    if action == "sleep":
        time.sleep(event.get("ms", 50) / 1000.0)
        return {"slept_ms": event.get("ms", 50)}
    if action == "fill_tmp":
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "filler")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        chunk = b"f" * 4096
        full = False
        try:
            while True:
                os.write(fd, chunk)
        except OSError:
            full = True
        finally:
            os.close(fd)
        return {"full": full}
    if action == "channel":
        path = os.environ.get("LAMBDA_METER_CHANNEL")
        lines = event.get("lines", 10)
        size = event.get("bytes", 1000)
        if path:
            with open(path, "a") as channel:
                for i in range(lines):
                    value = {"note": "n" * max(size - 60, 0)}
                    line = {"property": f"p{i}", "value": value, "pid": os.getpid()}
                    channel.write(json.dumps(line) + "\n")
        return {"written": lines}
    if action == "starve":
        return starve()
    if action == "hog":
        hoard = []
        try:
            while True:
                hoard.append(bytearray(1 << 20))
        except MemoryError:
            pass
        got = len(hoard)
        hoard.clear()
        return {"hogged": got > 0}
    if action == "fds":
        opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(event.get("open", 3))]
        listed = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        for fd in opened:
            os.close(fd)
        return {"opened": opened, "listed": listed}
    raise ValueError(f"unknown action {action!r}")
