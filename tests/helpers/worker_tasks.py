"""Task functions for the worker-pool tests (module level, so worker processes can import them)."""
import os
import signal
import time


def behave(task):
    """'ok:N' returns N*2; 'hang' never returns; 'crash' dies like a native decoder; 'raise' fails."""
    kind, _, arg = task.partition(":")
    if kind == "hang":
        time.sleep(3600)
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "raise":
        raise ValueError("bad texture\nwith a second line")
    if kind == "hog":
        blob = bytearray(int(arg) << 20)   # more memory than the worker may have
        return len(blob)
    return int(arg) * 2
