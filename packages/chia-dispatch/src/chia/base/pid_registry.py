"""PID tracking and cancellation for ChiaFunction remote tasks.

Tracks the subprocesses that ``@ChiaFunction`` remote tasks start and provides
:func:`chia_cancel`, which kills those process trees before Ray cancels the
task. The ``subprocess.Popen`` hook is scoped per task with
``threading.local``, so concurrent Ray tasks in one worker never mix.

Where things live: each job gets one :class:`PidRegistryActor`
(``chia_pid_registry_<job id>`` in namespace ``chia``), detached and pinned to
the head node, created on the job's first tracked spawn. Killing happens on
the node that runs the processes, in a small per-job reaper actor the
registry starts there on the first spawn it hears of.
"""

from __future__ import annotations

# Defined in chia-dispatch's private core, below ChiaFunction (which re-exports
# chia_cancel) and the dispatch proxy (which cancels the tasks it relays).
from chia.base._dispatch.registry import PidRegistryActor, chia_cancel, kill_all_tracked

__all__ = ["PidRegistryActor", "chia_cancel", "kill_all_tracked"]
