"""A small process pool that survives its workers.

Native decoders (texture formats, image codecs) can crash or hang a process. Here each task runs in a
worker process; a worker that dies or runs past its time limit is killed and replaced, and only its
task is lost: it comes back as a failed `Outcome` with the reason, and the run goes on.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger("workers")


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error: str = ""                 # one line: what went wrong, for skipped.csv


def resolve_workers(n: int) -> int:
    """0 means every core this process may use."""
    if n > 0:
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _limit_threads() -> None:
    # N workers each running a multi-threaded library would fight over the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:
        pass


def _limit_memory(memory_mb: int) -> None:
    if memory_mb > 0:
        try:
            import resource
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass


def _worker_main(conn, fn: Callable, memory_mb: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _limit_threads()
    _limit_memory(memory_mb)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            conn.send(Outcome(True, fn(task)))
        except MemoryError:
            conn.send(Outcome(False, error="out of memory (worker memory limit)"))
        except Exception as e:  # a bad input: report it as this task's failure, keep serving
            msg = " ".join(str(e).split())[:300]
            conn.send(Outcome(False, error=f"{type(e).__name__}: {msg}" if msg else type(e).__name__))


class _Worker:
    def __init__(self, ctx, fn, memory_mb):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.task = None
        self.timeout: float | None = None
        self.started = 0.0

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _death_reason(proc) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"worker crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"worker crashed (signal {-code})"
    return f"worker exited unexpectedly (code {code})"


class WorkerPool:
    """Up to `workers` processes that run `fn(task)`, started as tasks arrive; tasks come from a feed and
    from `submit` (follow-ups).

    `fn` must be a module-level function (it is pickled by reference). Results come back in completion
    order; sort them yourself where order matters.
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int = 0, memory_mb: int = 0,
                 desc: str = "", unit: str = "it"):
        self.fn, self.memory_mb = fn, memory_mb
        self.n = resolve_workers(workers)
        self.ctx = mp.get_context("spawn")
        self.queue: deque = deque()                  # (task, timeout) follow-ups, served first
        self.bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5)
        self.pool: list[_Worker] = []

    def submit(self, task, timeout: float | None = None) -> None:
        self.queue.append((task, timeout))

    def run(self, feed: Iterable, timeout: Callable[[Any], float | None] = lambda task: None
            ) -> Iterator[tuple[Any, Outcome]]:
        """Yield (task, Outcome) for every task of `feed` and every follow-up submitted meanwhile."""
        feed = iter(feed)
        self.pool = []               # started as tasks need them: a run with little to do starts few
        exhausted = False
        try:
            while True:
                while True:
                    worker = next((w for w in self.pool if w.task is None), None)
                    if worker is None and len(self.pool) >= self.n:
                        break
                    if self.queue:
                        task, limit = self.queue.popleft()
                    elif not exhausted:
                        try:
                            task = next(feed)
                        except StopIteration:
                            exhausted = True
                            continue
                        limit = timeout(task)
                    else:
                        break
                    if worker is None:
                        worker = _Worker(self.ctx, self.fn, self.memory_mb)
                        self.pool.append(worker)
                    worker.task, worker.timeout = task, limit
                    worker.conn.send(task)
                    worker.started = time.monotonic()
                busy = [w for w in self.pool if w.task is not None]
                if not busy:
                    break
                deadlines = [w.started + w.timeout for w in busy if w.timeout]
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait_s)
                for i, w in enumerate(self.pool):
                    outcome = self._check(w, ready)
                    if outcome is None:
                        continue
                    task, w.task = w.task, None
                    if not outcome.ok and outcome.error.startswith(("worker", "timed out")):
                        w.kill()
                        self.pool[i] = _Worker(self.ctx, self.fn, self.memory_mb)
                    self.bar.update(1)
                    yield task, outcome
        finally:
            self.close()

    @staticmethod
    def _check(w: "_Worker", ready) -> Outcome | None:
        if w.task is None:
            return None
        if w.conn in ready:
            try:
                return w.conn.recv()
            except (EOFError, OSError):
                w.proc.join(5)
                return Outcome(False, error=_death_reason(w.proc))
        if w.proc.sentinel in ready:
            w.proc.join(5)
            return Outcome(False, error=_death_reason(w.proc))
        if w.timeout and time.monotonic() - w.started > w.timeout:
            return Outcome(False, error=f"timed out after {w.timeout:g} s")
        return None

    def close(self) -> None:
        self.bar.close()
        for w in self.pool:
            try:
                if w.task is None:
                    w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self.pool:
            w.proc.join(2)
            w.kill()
        self.pool = []
