"""Long work in separate processes, so Blender's UI never waits: a :class:`Job` runs one command or
a chain of commands (the backend Python for baking, motion and generation; a background Blender for
rendering) in a thread, reads their progress lines (``motion.progress``, AVATARCINE_PROGRESS=lines)
and error line from stderr, and is cancelled by terminating the running process (killed if it
is still running after a grace period). Not an interrupt: Blender takes SIGINT as "abort this frame"
and renders on. Our commands write every file under a temporary name and rename it when complete,
so a terminated one leaves its finished results and no partial one (a render resumes from its
finished frames). No bpy here: the operators poll a job from a timer (``blender_addon.operators``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections import deque

from motion.progress import parse_line

ERROR_PREFIX = "avatarcine: error: "
GRACE_S = 5.0                   # from terminate to kill


class Job:
    """``commands`` run one after the other (a failing one stops the chain); ``label`` names the job
    in the UI. After :meth:`wait` (or once :attr:`running` is False): ``returncode``, ``error`` (one
    line), ``stdout`` (of the last command), ``cancelled``."""

    def __init__(self, commands: list[list[str]], label: str, env: dict | None = None):
        self.commands, self.label = [list(map(str, c)) for c in commands], label
        self.env = {**os.environ, **(env or {}), "AVATARCINE_PROGRESS": "lines"}
        self.step = 0                                # index of the running command
        self.progress: tuple[str, int, int | None] | None = None
        self.returncode: int | None = None
        self.error = ""
        self.stdout = ""
        self.cancelled = False
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"avatarcine {label}", daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> "Job":
        self._thread.join(timeout)
        return self

    def cancel(self) -> None:
        """Stop the chain: terminate the running process, kill it if it still runs after ``GRACE_S``."""
        with self._lock:
            self.cancelled = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            threading.Thread(target=_stop, args=(proc,), daemon=True).start()

    @property
    def fraction(self) -> float:
        """Share done: finished commands plus the running one's reported progress."""
        done = self.step
        if self.progress and self.progress[2]:
            done += min(self.progress[1] / self.progress[2], 1.0)
        return min(done / max(len(self.commands), 1), 1.0)

    def status(self) -> str:
        """One line for the UI: the label and the latest progress."""
        if self.progress is None:
            return f"{self.label}…"
        desc, done, total = self.progress
        return f"{self.label}: {desc} {done}/{total if total is not None else '?'}"

    def _run(self) -> None:
        for self.step, command in enumerate(self.commands):
            self.progress = None
            code = self._run_one(command)
            if code or self.cancelled:
                self.returncode = code if code else 1
                return
        self.step = len(self.commands)
        self.returncode = 0

    def _run_one(self, command: list[str]) -> int:
        tail: deque[str] = deque(maxlen=40)
        with tempfile.TemporaryFile("w+") as out:
            with self._lock:
                if self.cancelled:
                    return 1
                try:
                    self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                                  text=True, errors="replace", env=self.env)
                except OSError as exc:
                    self.error = f"{command[0]}: cannot run ({exc.strerror or exc})"
                    return 127
            for line in self._proc.stderr:
                parsed = parse_line(line)
                if parsed is not None:
                    self.progress = parsed
                elif line.strip():
                    tail.append(line.strip())
            code = self._proc.wait()
            out.seek(0)
            self.stdout = out.read()
        if code and not self.cancelled:
            self.error = _error_line(list(tail), command, code)
        return code


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()


def _error_line(lines: list[str], command: list[str], code: int) -> str:
    """The command's own one-line error (``avatarcine: error: ...``), else its last line, else the code."""
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    if lines:
        return lines[-1]
    return f"{os.path.basename(command[0])} exited with code {code}"
