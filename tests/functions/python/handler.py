"""Test and demo handlers for the Python runtime client (awslambdaric).

`dispatch` does what the event asks, so one function serves a whole event mix:
  {"action": "ok"}                 -> a small JSON result
  {"action": "sleep", "ms": 50}    -> sleeps, then returns
  {"action": "fail", "type": "X"}  -> raises an exception of class X (default ValueError);
                                      "message_bytes": N and "depth": D make its message N
                                      bytes longer and its traceback D frames deeper
  {"action": "big", "bytes": N}    -> returns a string of N bytes
  {"action": "echo", ...}          -> returns the event's size and a digest of it
  {"action": "pid", "ms": 30}      -> sleeps, then returns the worker's process id
  {"action": "hold", "mb": 48, "pid": false}
                                   -> fills mb MiB of memory the process keeps; returns its
                                      process id when pid is true
  {"action": "fds", "n": 20}       -> opens n files and keeps them open
  {"action": "connect", "host": H, "port": P}
                                   -> connects a TCP socket there; returns whether it was
                                      refused
  {"action": "threads", "n": 5}    -> starts n threads that stay alive
  {"action": "subprocess", "how": "run"|"popen"|"posix_spawn"|"check_output"}
                                   -> starts a child process and waits for it
  {"action": "child_memory", "mb": 100, "ms": 150}
                                   -> a child process fills mb MiB of memory and exits; the
                                      handler waits for it, then sleeps ms
  {"action": "c_environ"}          -> the names in the C library's environment
  {"action": "partial", "text": T} -> writes T to stdout without a newline
  {"action": "child_partial", "text": T, "how": "system"|"printf"|"curl"}
                                   -> a child process writes T to stdout without a newline:
                                      the shell's printf (os.system), /usr/bin/printf, or curl
                                      fetching a file that holds T
  {"action": "exit", "how": "sys.exit"|"os._exit", "code": 3}
                                   -> ends the process during the invoke
  {"action": "crash", "signal": "SIGSEGV", "how": "fault"|"kill"|"abort"}
                                   -> dies of a signal: a real fault, a signal sent to itself,
                                      or os.abort()
  {"action": "channel", "metrics": {"Name": 1}, "ms": 0}
                                   -> appends the metrics to LAMBDA_METER_CHANNEL by hand
                                      (after cutting the file when "truncate" is true)
  {"action": "clean_tmp"}          -> removes everything in the temporary directory
  {"action": "custom", "calls": [["add_metric", "Orders", "Count", 1], ...], "ms": 0,
   "report": false}                -> makes each call of the lambda_meter shim (layer/shims),
                                      sleeps ms, returns the status codes if report, and the
                                      variables the wrapper sets

With LAMBDA_METER_TEST_AT_INIT set, the module adds metric InitMetric while it loads. With
TEST_SLOW_FIRST_INIT_MS=N, the first process of an environment (no file .slow-init-done in the
temporary directory yet) takes N ms to load: an init that may run past the function's timeout.
"""

import ctypes
import hashlib
import resource
import json
import os
import shlex
import signal
import subprocess
import shutil
import sys
import tempfile
import threading
import time


try:
    import lambda_meter
except ImportError:  # the shim is not on the path: the "custom" action says so
    lambda_meter = None

if lambda_meter is not None and os.environ.get("LAMBDA_METER_TEST_AT_INIT"):
    lambda_meter.add_metric("InitMetric", "Count", 1)

if os.environ.get("TEST_SLOW_FIRST_INIT_MS"):
    _done = os.path.join(tempfile.gettempdir(), ".slow-init-done")
    if not os.path.exists(_done):
        open(_done, "w").close()
        time.sleep(int(os.environ["TEST_SLOW_FIRST_INIT_MS"]) / 1000.0)


class OrderNotFound(Exception):
    pass


# Files and threads the "fds" and "threads" actions keep alive across invokes.
KEPT = []
STOP = threading.Event()
# Threads of the "flood" action, joined by "flood_join".
FLOOD = []

ERRORS = {"ValueError": ValueError, "KeyError": KeyError, "OrderNotFound": OrderNotFound}


def dispatch(event, context):
    action = event.get("action", "ok") if isinstance(event, dict) else "echo"
    if action == "ok":
        return {"ok": True, "requestId": context.aws_request_id}
    if action == "connect":
        import socket

        try:
            socket.create_connection((event["host"], event["port"]), timeout=10).close()
            return {"refused": False}
        except ConnectionRefusedError:
            return {"refused": True}
    if action == "channel":
        # The channel by hand, as any language can write it: one JSON line per value, with this
        # process's id (no request id: the process's only open invoke).
        # "truncate": the file is cut first, as a file made again with the inode number of
        # a removed one looks to a reader.
        mode = "w" if event.get("truncate") else "a"
        with open(os.environ["LAMBDA_METER_CHANNEL"], mode) as channel:
            for name, value in event.get("metrics", {}).items():
                channel.write(json.dumps({"metric": name, "value": value, "pid": os.getpid()}) + "\n")
        time.sleep(event.get("ms", 0) / 1000.0)
        return {"pid": os.getpid()}
    if action == "clean_tmp":
        # Hygiene some functions do between invokes: everything in the temporary directory,
        # hidden files too, is removed.
        tmp = tempfile.gettempdir()
        for name in os.listdir(tmp):
            path = os.path.join(tmp, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        return {"cleaned": True}
    if action == "custom":
        statuses = [getattr(lambda_meter, call[0])(*call[1:]) for call in event.get("calls", [])]
        time.sleep(event.get("ms", 0) / 1000.0)
        if event.get("report"):
            return {"statuses": statuses, "PYTHONPATH": os.environ.get("PYTHONPATH")}
        return {"calls": len(statuses)}
    if action == "sleep":
        time.sleep(event.get("ms", 50) / 1000.0)
        return {"slept_ms": event.get("ms", 50)}
    if action == "fail":
        error = ERRORS.get(event.get("type", "ValueError"), ValueError)
        message = event.get("message", "failing on purpose")
        message += "m" * int(event.get("message_bytes", 0))

        def deeper(n):  # a traceback of `depth` frames
            if n <= 0:
                raise error(message)
            return deeper(n - 1) + 1

        deeper(int(event.get("depth", 0)))
    if action == "big":
        return "x" * int(event.get("bytes", 300_000))
    if action == "echo":
        raw = json.dumps(event, sort_keys=True).encode()
        return {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if action == "pid":
        time.sleep(event.get("ms", 0) / 1000.0)
        return {"pid": os.getpid()}
    if action == "hold":
        KEPT.append(b"h" * (int(event["mb"]) << 20))
        return {"pid": os.getpid()} if event.get("pid") else {"held_mb": event["mb"]}
    if action == "fds":
        KEPT.extend(open(os.devnull) for _ in range(event.get("n", 20)))
        return {"open": len(KEPT)}
    if action == "threads":
        for _ in range(event.get("n", 5)):
            t = threading.Thread(target=STOP.wait, daemon=True)
            t.start()
            KEPT.append(t)
        return {"threads": threading.active_count()}
    if action == "child_memory":
        fill = "b = b'x' * ({} << 20)".format(int(event["mb"]))
        done = subprocess.run([sys.executable, "-c", fill])
        time.sleep(event.get("ms", 0) / 1000.0)
        return {"status": done.returncode}
    if action == "subprocess":
        how = event.get("how", "run")
        if how == "run":
            done = subprocess.run(["sh", "-c", "echo child; exit 3"], capture_output=True)
            return {"status": done.returncode, "out": done.stdout.decode()}
        if how == "popen":
            child = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            out, _ = child.communicate(b"through a pipe")
            return {"status": child.returncode, "out": out.decode()}
        if how == "posix_spawn":
            pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 4"], dict(os.environ))
            _, status = os.waitpid(pid, 0)
            return {"status": os.waitstatus_to_exitcode(status)}
        if how == "check_output":
            return {"out": subprocess.check_output(["uname"]).decode().strip() != ""}
        raise ValueError(f"unknown subprocess {how!r}")
    if action == "text_pages":
        # Of the code of the library whose path holds `name`, the pages this process has in its
        # page tables (/proc/self/pagemap's present bit), and all of them.
        name = event.get("name", "liblambda_meter")
        present = total = 0
        with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps:
                fields = line.split()
                if len(fields) < 6 or fields[1] != "r-xp" or name not in fields[5]:
                    continue
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                for addr in range(lo, hi, 4096):
                    pagemap.seek(addr // 4096 * 8)
                    present += int.from_bytes(pagemap.read(8), "little") >> 63
                    total += 1
        print("TEXT_PAGES", present, total, file=sys.stderr)
        return {"present": present, "total": total}
    if action == "c_environ":
        # The C library's environment (what a child started with execve(environ) gets), not
        # os.environ's copy taken at start-up.
        env = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
        names, i = [], 0
        while env[i] is not None:
            names.append(env[i].split(b"=", 1)[0].decode())
            i += 1
        return {"names": sorted(names)}
    if action == "child_partial":
        text = event.get("text", "child: 50%")
        how = event.get("how", "system")
        if how == "system":
            os.system("printf '%s' " + shlex.quote(text))
        elif how == "printf":
            subprocess.run(["/usr/bin/printf", "%s", text], check=True)
        else:
            path = os.path.join(tempfile.gettempdir(), "child-partial.txt")
            with open(path, "w") as f:
                f.write(text)
            subprocess.run(["curl", "-sS", "file://" + path], check=True)
        return {"child": how}
    if action == "partial":
        sys.stdout.write(event.get("text", "progress: 50%"))
        sys.stdout.flush()
        return {"partial": True}
    if action == "exit":
        sys.stdout.flush()
        if event.get("how", "sys.exit") == "os._exit":
            os._exit(event.get("code", 3))
        sys.exit(event.get("code", 3))
    if action == "crash":
        sys.stdout.flush()
        sig = getattr(signal, event.get("signal", "SIGSEGV"))
        how = event.get("how", "kill")
        if how == "fault":
            ctypes.string_at(0)
        if how == "abort":
            os.abort()
        os.kill(os.getpid(), sig)
        time.sleep(5)
        return {"survived": True}
    if action == "fork":
        how = event.get("how", "exit")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            if how == "exec":
                os.execv("/bin/true", ["true"])
            if how == "pipe":
                os.write(write_end, b"from the child")
            os._exit(0)
        os.close(write_end)
        got = os.read(read_end, 100)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        return {"status": os.waitstatus_to_exitcode(status), "got": got.decode()}
    if action == "redirect":
        sys.stdout.flush()
        saved = os.dup(1)
        with open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "redirected.log"), "w") as f:
            os.dup2(f.fileno(), 1)
            print("into the file")
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        return {"redirected": True}
    if action == "close_stdout":
        sys.stdout.flush()
        os.close(1)
        # The next file opened gets fd 1, as it would in any program that closed its stdout.
        KEPT.append(open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "after-close.log"), "w"))
        return {"stdout": KEPT[-1].fileno()}
    if action == "flood":
        def writer(n, lines):
            for i in range(lines):
                os.write(1, (f"flood {n} {i} " + "x" * 1000 + "\n").encode())
        FLOOD.extend(
            threading.Thread(target=writer, args=(n, event.get("lines", 300)))
            for n in range(event.get("threads", 4))
        )
        for t in FLOOD:
            t.start()
        return {"flooding": len(FLOOD)}
    if action == "flood_join":
        for t in FLOOD:
            t.join()
        FLOOD.clear()
        return {"joined": True}
    if action == "alarm_storm":
        signal.signal(signal.SIGALRM, lambda *_: None)
        interval = event.get("us", 200) / 1e6
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        return {"storm": True}
    if action == "alarm_stop":
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        return {"storm": False}
    if action == "exhaust_fds":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        held = []
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return {"opened": len(held)}
    if action == "exhaust_memory":
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, ((size + 64 * 1024) * 1024, hard))
        hoard = []
        try:
            while True:
                hoard.append(bytearray(1 << 20))
        except MemoryError:
            pass
        got = len(hoard)
        print("out of memory after", "many" if got > 8 else "few", "MB")
        hoard.clear()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return {"exhausted": True}
    if action == "secret":
        return {"token": event.get("secret"), "context": str(context.client_context)}
    if action == "stats":
        with open("/proc/self/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return {"rss_kb": rss, "fds": len(os.listdir("/proc/self/fd"))}
    if action == "print":
        print(event.get("text", "hello from the handler"))
        return {"printed": True}
    raise ValueError(f"unknown action {action!r}")
