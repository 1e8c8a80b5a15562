"""A tiny thread-aware sampling profiler (no dependency).

cProfile only sees the thread that enabled it, while the pipeline fetches pages on worker
threads and builds Arrow tables on the main one. This samples every thread's stack with
`sys._current_frames()` every few milliseconds and counts, per function, how often it was on
top of a stack (self) and anywhere on a stack (inclusive). Samples are taken between
bytecodes, so time spent in C code that holds the GIL is charged to its Python caller.
Idle threads (waiting on a lock, a socket or a queue) are counted separately so they do not
drown the busy ones. Per thread role (the main thread, which runs dlt and builds the Arrow
tables, and the page-fetching workers) it also counts busy and idle samples: a main thread
that is busy in nearly every sample is the bottleneck.

Caveat: a sample is taken only when the sampler holds the GIL, and a thread waiting to get
the GIL back after a blocking call is shown at that call (e.g. a socket write): such
frames count as busy although the thread is waiting for the interpreter.
"""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

# Frames whose top function is one of these are waiting, not working.
_IDLE = {
    ("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock"), ("queue.py", "get"),
    ("queue.py", "put"), ("selectors.py", "select"), ("socket.py", "readinto"),
    ("threading.py", "join"), ("concurrent/futures/thread.py", "_worker"),
    ("_backends/sync.py", "read"), ("time", "sleep"), ("ssl.py", "read"),
    ("sampler.py", "_run"), ("httpcore/_synchronization.py", "__enter__"), ("iru_pipeline/cli.py", "watch"),
    ("httpcore/_synchronization.py", "wait"), ("threading.py", "acquire"),
}


def _key(code: Any) -> tuple[str, str]:
    fname = code.co_filename
    for marker in ("site-packages/", "lib/python3", "iru_pipeline/", "iru_pipeline_tests/"):
        at = fname.rfind(marker)
        if at >= 0:
            fname = fname[at + len(marker):] if marker != "iru_pipeline/" else fname[at:]
            break
    return fname, code.co_name


class Sampler:
    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.self_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.incl_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.busy_samples = 0
        self.idle_samples = 0
        self.ticks = 0
        self.by_role: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.main_self: collections.Counter[tuple[str, str]] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        main = threading.main_thread().ident
        while not self._stop.wait(self.interval):
            self.ticks += 1
            names = {t.ident: t.name for t in threading.enumerate()}
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                role = "main" if tid == main else _role(names.get(tid, "?"))
                top = _key(frame.f_code)
                if any(top[0].endswith(f) and top[1] == n for f, n in _IDLE):
                    self.idle_samples += 1
                    self.by_role[role]["idle"] += 1
                    continue
                self.busy_samples += 1
                self.by_role[role]["busy"] += 1
                self.self_counts[top] += 1
                if role == "main":
                    self.main_self[top] += 1
                seen = set()
                f = frame
                while f is not None:
                    k = _key(f.f_code)
                    if k not in seen:
                        seen.add(k)
                        self.incl_counts[k] += 1
                    f = f.f_back

    def report(self, top: int = 25) -> dict[str, Any]:
        busy = max(1, self.busy_samples)

        def rows(counter: collections.Counter[tuple[str, str]]) -> list[dict[str, Any]]:
            return [{"function": f"{fn}:{name}", "share": round(n / busy, 4), "samples": n}
                    for (fn, name), n in counter.most_common(top)]

        roles = {}
        for role, c in sorted(self.by_role.items()):
            threads_seen = max(1, round((c["busy"] + c["idle"]) / max(1, self.ticks)))
            roles[role] = {"busy_samples": c["busy"], "idle_samples": c["idle"], "threads": threads_seen,
                           "busy_share_per_thread": round(c["busy"] / max(1, self.ticks) / threads_seen, 3)}
        return {"interval_s": self.interval, "ticks": self.ticks, "busy_samples": self.busy_samples,
                "idle_samples": self.idle_samples, "by_role": roles, "self": rows(self.self_counts),
                "main_thread_self": rows(self.main_self),
                "inclusive": rows(self.incl_counts)}


def _role(name: str) -> str:
    if name.startswith("intercom-window"):
        return "page fetchers (intercom-window-*)"
    if name.startswith("ThreadPoolExecutor"):
        return "pools (ThreadPoolExecutor-*: window probes, dlt load jobs)"
    return "other threads"


def format_profile(profile: dict[str, Any], top: int = 15) -> str:
    lines = [f"  busy samples {profile['busy_samples']}, idle {profile['idle_samples']} "
             f"(every {profile['interval_s'] * 1000:.0f} ms, all threads)"]
    for role, r in (profile.get("by_role") or {}).items():
        lines.append(f"  {role}: busy in {r['busy_share_per_thread']:.0%} of samples per thread "
                     f"(~{r['threads']} thread(s))")
    titles = {"main_thread_self": "top self, main thread (dlt + Arrow building; share of all busy samples)",
              "self": "top self, all threads (I/O frames of fetchers include waits for the GIL)",
              "inclusive": "top inclusive, all threads"}
    for kind, title in titles.items():
        if kind not in profile:
            continue
        lines.append(f"  {title}:")
        for row in profile[kind][:top]:
            lines.append(f"    {row['share'] * 100:5.1f}%  {row['function']}")
    return "\n".join(lines)
