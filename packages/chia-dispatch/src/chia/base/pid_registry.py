"""PID tracking and cancellation for ChiaFunction remote tasks.

Tracks the subprocesses that ``@ChiaFunction`` remote tasks start and provides
:func:`chia_cancel`, which kills those process trees before Ray cancels the
task. The ``subprocess.Popen`` hook is scoped per task with
``threading.local``, so concurrent Ray tasks in one worker never mix.

Where things live: each job gets one :class:`PidRegistryActor`
(``chia_pid_registry_<job id>`` in namespace ``chia``), detached and pinned to
the head node, created on the job's first tracked spawn (or first tag a task
name does not carry). Killing happens on
the node that runs the processes, in a small per-job reaper actor the
registry starts there on the first spawn it hears of.

For processes that hold no ObjectRef (the ``chia`` command line, another
job): :func:`tracked_tasks` reports every job's tracked process trees and the
causes ``chia_wait`` recorded for stuck tasks (``chia status``),
:func:`task_tags` the tags of tasks whose Ray task names do not carry them, and
:func:`cancel_tasks` applies ``chia_cancel``'s tree kill to tasks named by id
(``chia cancel --tag/--function/--task``).
"""

from __future__ import annotations

# Defined in chia-dispatch's private core, below ChiaFunction (which re-exports
# chia_cancel) and the dispatch proxy (which cancels the tasks it relays).
from chia.base._dispatch.registry import (
    PidRegistryActor,
    TrackedProcess,
    TrackedTask,
    cancel_tasks,
    chia_cancel,
    kill_all_tracked,
    task_tags,
    tracked_tasks,
)

__all__ = [
    "PidRegistryActor",
    "TrackedProcess",
    "TrackedTask",
    "cancel_tasks",
    "chia_cancel",
    "kill_all_tracked",
    "task_tags",
    "tracked_tasks",
]
