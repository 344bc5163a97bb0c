"""What every operator of the add-on shares: errors reported as one line in Blender's UI (never a
traceback), and long work run as a :class:`blender_addon.jobs.Job` that a modal timer polls, with
progress in the panel and the status bar, Esc or the panel's button to cancel. Called from a script
or a headless Blender (no window), the same operators run their job to the end before returning."""

from __future__ import annotations

import functools
import sys
import traceback

import bpy
from bpy.props import StringProperty

from motion.errors import UserError

from .jobs import Job

RUNNING: dict[str, Job] = {}          # kind of job -> the job running now (one of each kind)


def one_line(exc: Exception) -> str:
    """A user error as is; anything else as its type and message (the traceback goes to the console)."""
    if isinstance(exc, UserError):
        return str(exc)
    traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def reporting(method):
    """Wrap an operator's ``execute``: an exception becomes one ERROR report and CANCELLED."""
    @functools.wraps(method)
    def wrapper(self, context, *args):
        try:
            return method(self, context, *args)
        except Exception as exc:          # noqa: BLE001 - the UI gets one line, never a traceback
            self.report({"ERROR"}, one_line(exc))
            return {"CANCELLED"}
    return wrapper


def redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR"):
                area.tag_redraw()


class JobOperator:
    """Mixin for operators whose work runs in another process. Subclasses set ``job_kind`` (and
    ``bl_options = {"REGISTER"}`` when they only write files), may narrow ``ready(context)`` (their
    poll), and define ``make_job(context) -> Job`` (check inputs, raise UserError) and
    ``finish(context, job)`` (load the results into the scene; nothing in the scene changes before it)."""

    job_kind = ""
    bl_options = {"REGISTER", "UNDO"}       # its results go into the scene: undoable, in object mode only
    _timer = None

    @classmethod
    def poll(cls, context):
        return (cls.job_kind not in RUNNING and ("UNDO" not in cls.bl_options or context.mode == "OBJECT")
                and cls.ready(context))

    @classmethod
    def ready(cls, context) -> bool:
        return True

    def explain(self, error: str) -> str:
        """The command's error line as the panel's user reads it."""
        return error

    def execute(self, context):
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        return self._end(context, job.wait())

    def invoke(self, context, event):
        if context.window is None:
            return self.execute(context)
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = RUNNING[self.job_kind]
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job.running:
            context.workspace.status_text_set(job.status())
            redraw(context)
            return {"PASS_THROUGH"}
        self._stop_timer(context)
        return self._end(context, job)

    def cancel(self, context):                 # Blender ends the modal run (e.g. a file is loaded)
        job = RUNNING.get(self.job_kind)
        if job is not None:
            job.cancel()
            job.wait()
            RUNNING.pop(self.job_kind, None)
        self._stop_timer(context)

    def _stop_timer(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def _begin(self, context) -> Job | None:
        try:
            job = self.make_job(context)
        except Exception as exc:           # noqa: BLE001
            self.report({"ERROR"}, one_line(exc))
            return None
        RUNNING[self.job_kind] = job
        return job.start()

    def _end(self, context, job: Job):
        RUNNING.pop(self.job_kind, None)
        redraw(context)
        if job.cancelled:
            self.report({"WARNING"}, f"{job.label}: cancelled")
            return {"CANCELLED"}
        if job.returncode:
            self.report({"ERROR"}, self.explain(job.error))
            return {"CANCELLED"}
        try:
            self.finish(context, job)
        except Exception as exc:           # noqa: BLE001
            self.report({"ERROR"}, one_line(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class AVATARCINE_OT_cancel_job(bpy.types.Operator):
    """Stop this job (finished results are kept)"""
    bl_idname = "avatarcine.cancel_job"
    bl_label = "Cancel"

    kind: StringProperty()

    @classmethod
    def poll(cls, context):
        return bool(RUNNING)

    def execute(self, context):
        job = RUNNING.get(self.kind)
        if job is None:
            return {"CANCELLED"}
        job.cancel()
        return {"FINISHED"}


def draw_job(layout, kind: str) -> bool:
    """Progress bar and cancel button of the running ``kind`` job; whether one runs."""
    job = RUNNING.get(kind)
    if job is None:
        return False
    row = layout.row(align=True)
    row.progress(factor=job.fraction, type="BAR", text=job.status())
    row.operator(AVATARCINE_OT_cancel_job.bl_idname, text="", icon="X").kind = kind
    return True


def job_button(layout, operator, **kwargs) -> None:
    """The button of a job operator, or its job's progress and cancel button while it runs."""
    if not draw_job(layout, operator.job_kind):
        layout.operator(operator.bl_idname, **kwargs)


CLASSES = (AVATARCINE_OT_cancel_job,)
