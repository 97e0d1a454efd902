"""Private test support shared by the tests of every chia package (not published; not part of ``chia``).

Importable on Ray workers too (they run in the tests' environment), so code a
test ships to a worker can poll and scan /proc with the same helpers. This
module imports only the standard library; the cluster fixtures live in
``chia_testing.cluster`` and the pytest plugin in ``chia_testing.plugin``.

- ``wait_until(predicate, *, timeout=60, interval=0.05, message=None)``: poll until truthy.
- ``tagged_pids(tag)`` and ``TaggedProcesses``: processes whose argv[0] starts with a tag.
- ``running(pid)``: whether a process is live (a zombie not yet reaped is not).
- ``free_port()``: a TCP port on 127.0.0.1 that nothing listens on.
"""

from chia_testing._poll import wait_until
from chia_testing._ports import LOOPBACK, free_port
from chia_testing._procs import TaggedProcesses, running, tagged_pids

__all__ = ["LOOPBACK", "TaggedProcesses", "free_port", "running", "tagged_pids", "wait_until"]
