"""The math-verify check of one completion, in this process or in a worker process of its own.

math-verify bounds its work with `signal.alarm`, which only a process's main thread may set. In
any other thread there is no bound, and it is worse than a slow thread: sympy's big-integer
arithmetic (`9^{9^{9^9}}`, `10000000!`, `\\binom{10^9}{10^8}`) runs in C holding the GIL, so every
thread of the process freezes with it. So `math_data.math_reward` checks in its own process only
from the main thread; from any other thread it hands the check to a worker process (one per
calling thread), in whose main thread the alarm works, and kills a worker that overruns
`CALL_TIMEOUT_S`: the time limit holds from any thread.

    python -c "..."  (see `Worker.start`) runs `serve()`: it reads one JSON request a line,
    {"completion", "gold", "accept_plain_number", "timeout_s"}, and writes one reply a line: the reward.

This file imports only math-verify and the standard library (never minirl, whose import takes
seconds), so a worker starts in about a second. POSIX only (it waits on the pipe with select).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException

MAX_COMPLETION_CHARS = 20_000
"""Only the tail this long is read: the answer is at the end, and the regexes slow on more."""
BOXED_FIRST = LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)
"""`\\boxed{}` first, then `answer is $...$`-style anchors; loose LaTeX elsewhere is ignored."""
PLAIN_NUMBER_TOO = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
STARTUP_TIMEOUT_S = 120
"""How long a new worker may take to import math-verify and say it is ready."""


def score(completion: str, gold: str, accept_plain_number: bool, timeout_s: int | None) -> float:
    """1.0 if the completion's final answer equals `gold` (LaTeX) by math-verify, else 0.0; never
    raises. `timeout_s` bounds parsing and comparing (signal.alarm: main thread only, else None)."""
    config = PLAIN_NUMBER_TOO if accept_plain_number else (BOXED_FIRST,)
    try:
        predicted = parse(completion[-MAX_COMPLETION_CHARS:], extraction_config=config, parsing_timeout=timeout_s)
        if not predicted:
            return 0.0
        return float(verify(_parsed_gold(gold, timeout_s), predicted, timeout_seconds=timeout_s))
    except (Exception, TimeoutException):  # TimeoutException is a BaseException
        return 0.0


@lru_cache(maxsize=4096)
def _parsed_gold(latex: str, timeout_s: int | None) -> list:
    return parse(f"\\boxed{{{latex}}}", extraction_config=[LatexExtractionConfig()], parsing_timeout=timeout_s)


# ---------------------------------------------------------------- the worker's side
def serve() -> None:
    """The worker's loop, in its main thread: requests in on stdin, rewards out on stdout."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr                                # whatever a library prints stays off the replies
    replies.write("ready\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        replies.write(json.dumps(score(request["completion"], request["gold"], request["accept_plain_number"],
                                       request["timeout_s"])) + "\n")
        replies.flush()


# ---------------------------------------------------------------- the caller's side
class Worker:
    """One worker process, used by one thread: `check` sends a request and waits at most
    `limit_s` for the reward; a worker that does not answer in time is killed (and the next
    check starts a new one)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('minirl_math_worker', "
                f"{os.path.abspath(__file__)!r}); module = importlib.util.module_from_spec(spec); "
                "spec.loader.exec_module(module); module.serve()")
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, bufsize=0)
        if self._reply(STARTUP_TIMEOUT_S) != b"ready":
            self.stop()
            raise RuntimeError("the math-verify worker process did not start")

    def check(self, completion: str, gold: str, accept_plain_number: bool, timeout_s: int, limit_s: float) -> float:
        if self.process is None or self.process.poll() is not None:
            self.start()
        request = {"completion": completion, "gold": gold, "accept_plain_number": accept_plain_number,
                   "timeout_s": timeout_s}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        reply = self._reply(limit_s)
        if reply is None:                                  # overran: kill it, the answer scores 0
            self.stop()
            return 0.0
        return float(json.loads(reply))

    def _reply(self, limit_s: float) -> bytes | None:
        """One line from the worker, or None when none came within `limit_s` (or it died)."""
        line, deadline = b"", time.monotonic() + limit_s
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = self.process.stdout.read(1) if ready else b""
            if not chunk:
                return None
            line += chunk
        return line.strip()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __del__(self):                                     # the thread that used it has ended
        try:
            self.stop()
        except Exception:  # noqa: BLE001  (at interpreter exit the process may be gone already)
            pass


_workers = threading.local()


def check_in_worker(completion: str, gold: str, accept_plain_number: bool, timeout_s: int, limit_s: float) -> float:
    """`score` in this thread's worker process, bounded by `limit_s` seconds whatever the input."""
    if not hasattr(_workers, "worker"):
        _workers.worker = Worker()
    try:
        return _workers.worker.check(completion, gold, accept_plain_number, timeout_s, limit_s)
    except (OSError, RuntimeError, ValueError):            # a broken pipe, a worker that would not start
        _workers.worker.stop()
        return 0.0
