#!/usr/bin/env python3
"""Writes link/hot-functions.txt: the library's functions that run, in the order the linker is
to place them at the start of its code (build.rs turns the list into a linker script).

Why: the loader maps the library's code, and the kernel fills a process's page tables for it
64 KiB at a time, on the first touch of each such window. Functions in the order the compiler
emitted them put the few that run in every process (the constructor) in four windows, and
those a runtime runs in all of them: every process pays a page fault per window, a runtime
keeps every window resident. Placed together, a process that never talks to the Runtime API
touches one window of the library's code and a runtime a third of it.

How: callgrind runs, with an unstripped build of the library preloaded, `/bin/true`, a small
pipeline and Python starting up (what every process runs: the constructor and the hooks
passing through), then the runtimes as Lambda starts them: Python (through the wrapper) and
Rust (LD_PRELOAD) for 50 invokes each, Node.js (through the wrapper) for 20, the bash and curl
runtime for 3 (what a runtime
runs: activation, settings, the Runtime API conversation, the records, the handoff between
per-request processes). Each function that ran is written as the pattern of its section name,
the compiler's hash left out, so that the list stays valid for the other targets' builds and
for small changes of the code; a new function missing from it is only placed with the rest.
Run it after changes that add or rename what runs (`make hot-functions`); the layout test in
`tests/layer.rs` fails when too much of what runs is missing.

Needs what `make test` sets up (valgrind, the test environment's Python) and a release build.
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link", "hot-functions.txt")
TARGET = os.path.join(ROOT, "target", "hot-profile")
LIB = os.path.join(TARGET, "release", "liblambda_meter.so")
RELEASE = os.path.join(ROOT, "target", "release")
INVOKES = 50


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def build():
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="none")
    run(["cargo", "build", "--quiet", "--release", "-p", "lambda_meter",
         "--target-dir", TARGET], cwd=ROOT, env=env)
    run(["cargo", "build", "--quiet", "--release", "-p", "lambda-sim", "-p", "lambda-meter-rust-functions"],
        cwd=ROOT)


# Every run as Lambda runs a runtime: an unprivileged user. Run as root, that is nobody, with
# CAP_DAC_READ_SEARCH alone so that it can read the test environment root keeps under its home
# (the library's watchdog then starts as on Lambda, on a thread the C library does not know of).
LAMBDA_USER = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
               if os.geteuid() == 0 else [])


def callgrind(out_dir, name, cmd, env, cwd=ROOT):
    """Runs cmd (a list) under callgrind, following exec; returns the output files."""
    prefix = os.path.join(out_dir, name)
    full = LAMBDA_USER + ["valgrind", "--tool=callgrind", "--trace-children=yes",
            "--callgrind-out-file=" + prefix + ".%p"] + cmd
    subprocess.run(full, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.startswith(name + "."))


def executed(path):
    """The library's functions that ran in one callgrind output, by instructions, most first."""
    objects, names, cost = {}, {}, {}
    current_ob, current_fn = None, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(3):
                objects[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                current_ob = objects.get(m.group(2), "")
            continue
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == "fn":
                current_fn = names.get(m.group(2)) if "liblambda_meter" in (current_ob or "") else None
                if current_fn is not None:
                    cost.setdefault(current_fn, 0)
            continue
        # A cost line of the current function's own code: "<position> <instructions>".
        if current_fn is not None and re.match(r"^[+\-*0-9]", line):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                cost[current_fn] += int(parts[1])
    return cost


def patterns_by_name(lib):
    """Demangled name -> section-name patterns of the functions of that name."""
    raw = subprocess.run(["nm", "--defined-only", lib], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    dem = subprocess.run(["nm", "-C", "--defined-only", lib], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    out = {}
    for a, b in zip(raw, dem):
        pa, pb = a.split(None, 2), b.split(None, 2)
        if len(pa) != 3 or len(pb) != 3 or pa[1] not in "tTwW":
            continue
        out.setdefault(pb[2], set()).add(pattern(pa[2]))
    return out


def pattern(symbol):
    """A symbol's section-name pattern without what differs between builds: the legacy
    mangling's hash, the v0 mangling's crate disambiguators, LTO's suffixes."""
    s = re.sub(r"\.llvm\.\d+$", "", symbol)
    s = re.sub(r"17h[0-9a-f]{16}E$", "17h*", s)
    s = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", s)
    return s


def main():
    build()
    names = patterns_by_name(LIB)
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    python = os.path.join(ROOT, "target", "test-env", "venv", "bin", "python")
    groups = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o1777)  # the runs' output, written as LAMBDA_USER
        # Every process: what a runtime's helpers and children run, the library passive.
        every = dict(base, AWS_LAMBDA_RUNTIME_API="127.0.0.1:9", LD_PRELOAD=LIB)
        files = callgrind(tmp, "true", ["/bin/true"], every)
        files += callgrind(tmp, "pipe", ["/bin/sh", "-c", "echo x | cat >/dev/null; exec 3>&1"],
                           every)
        files += callgrind(tmp, "python-passive", [python, "-c", "import json, subprocess"], every)
        groups.append(("every process: the constructor, the hooks passing through", files,
                       ["true", "pipe", "python-passive"]))

        # A runtime, started as Lambda starts it: Python through the wrapper, the OS-only
        # ones (Rust, a shell runtime and its curl) with LD_PRELOAD.
        layer = os.path.join(tmp, "layer")
        run(["sh", os.path.join(ROOT, "layer", "assemble.sh"), LIB, layer],
            stdout=subprocess.DEVNULL)
        wrapper = os.path.join(layer, "lambda-meter")

        def events(n):
            path = os.path.join(tmp, "events-%d.json" % n)
            with open(path, "w") as f:
                # The last event makes the handler exit, so that callgrind writes its counts.
                f.write("[" + '{"action": "ok"},' * n + '{"action": "exit", "code": 0}]')
            return [os.path.join(RELEASE, "lambda-sim"), "--events", path, "--"]

        files = callgrind(tmp, "rust", events(INVOKES) + [
            "env", "LD_PRELOAD=" + LIB, os.path.join(RELEASE, "rust-buffered")], base)
        files += callgrind(tmp, "python", events(INVOKES) + [
            wrapper, python, "-m", "awslambdaric", "handler.dispatch"],
            base, cwd=os.path.join(ROOT, "tests", "functions", "python"))
        node = os.path.join(ROOT, "tests", "functions", "node")
        files += callgrind(tmp, "node", events(20) + [
            wrapper, "node", os.path.join(node, "node_modules", "aws-lambda-ric", "bin",
                                          "index.mjs"), "index.handler"],
            dict(base, LAMBDA_TASK_ROOT=node), cwd=node)
        shell = os.path.join(ROOT, "tests", "functions", "shell")
        files += callgrind(tmp, "shell", events(3) + [
            "env", "LD_PRELOAD=" + LIB, "LAMBDA_TASK_ROOT=" + shell,
            "_HANDLER=function.handler", os.path.join(shell, "bootstrap")], base)
        groups.append(("a runtime: activation, the Runtime API conversation, the records", files,
                       ["python", "node", "rust", "shell"]))

        seen, sections = set(), []
        for title, files, first in groups:
            # Which of the runs (the programs, the runtimes) each function ran in, and its
            # instructions. What the first run runs comes first, what the second runs next,
            # and so on (those of more runs before those of fewer): so what /bin/true runs is
            # one piece, and what a Python runtime runs another, the start of the next.
            cost, runs = {}, {}
            for path in files:
                for fn, n in executed(path).items():
                    cost[fn] = cost.get(fn, 0) + n
                    runs.setdefault(fn, set()).add(os.path.basename(path).split(".")[0])
            if not cost:
                sys.exit("hot-functions: no function of the library ran in " + title)
            lines = []
            def place(f):
                return tuple(run not in runs[f] for run in first) + (-len(runs[f]), -cost[f], f)

            for fn in sorted(cost, key=place):
                for p in sorted(names.get(fn, ())):
                    if p not in seen:
                        seen.add(p)
                        lines.append(p)
            sections.append((title, lines))

    with open(OUT, "w") as f:
        f.write("# Written by link/hot-functions.py: the library's functions that run, as section-name\n"
                "# patterns, in the order build.rs has the linker place them first. Do not edit.\n")
        for title, lines in sections:
            f.write("\n# %s\n" % title)
            for p in lines:
                f.write(p + "\n")
    print("hot-functions: %s (%s)" % (OUT, ", ".join("%d %s" % (len(l), t.split(":")[0])
                                                       for t, l in sections)))


if __name__ == "__main__":
    main()
