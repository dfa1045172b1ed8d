"""Runs a command with its stdout made a regular file or a Unix socket, as a Lambda
environment's runtime may have it (tests/shell_runtime.rs).

    python3 stdout_as.py file PATH -- COMMAND [ARGS...]    stdout: PATH, truncated, not appending
    python3 stdout_as.py socket PATH -- COMMAND [ARGS...]  stdout: a connection to the Unix
                                                            socket listening at PATH

The command replaces this process (exec): it is not a parent that could be taken for the
environment's root.
"""
import os
import socket
import sys

kind, path, sep, *command = sys.argv[1:]
assert sep == "--" and command, __doc__
if kind == "file":
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
elif kind == "socket":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    fd = s.detach()
else:
    sys.exit(__doc__)
os.dup2(fd, 1)
os.close(fd)
os.execvp(command[0], command)
