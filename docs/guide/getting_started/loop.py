"""A small design-space sweep: `chia run --working-dir . loop.py` (or `python loop.py` with RAY_ADDRESS set)."""

from __future__ import annotations

import functools
import logging
import os

import ray
import scoring

from chia.base.chia_wait import Sweep, TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, get

# Logs go to stderr, results to stdout. chia logs under "chia.*"; quieten Ray's own loggers.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("ray").setLevel(logging.WARNING)
log = logging.getLogger("loop")


@ChiaFunction(num_cpus=1)
def simulate(cores: int, cache_kb: int) -> dict[str, object]:
    """Runs on a worker; `scoring` is imported there from the copy of this directory Ray shipped."""
    return {"score": scoring.run_simulator(cores, cache_kb), "code_dir": os.path.dirname(scoring.__file__)}


if not ray.is_initialized():  # `python loop.py`: connect to $RAY_ADDRESS, ship this directory to the workers
    ray.init(runtime_env={"working_dir": os.path.dirname(os.path.abspath(__file__))})

configs = [(cores, cache_kb) for cores in (1, 2, 4) for cache_kb in (32, 64)]
pending = []
for cores, cache_kb in configs:
    tag = f"sim_c{cores}_k{cache_kb}"  # the Ray task is named simulate[sim_c1_k32]
    submit = functools.partial(simulate.options(_chia_tag=tag).chia_remote, cores, cache_kb)
    pending.append(TrackedRef(submit(), submit, label=tag))

results = {}
with Sweep(total=len(configs)) as sweep:
    while pending:
        ready, pending = chia_wait(pending, num_returns=1, pending_timeout=300, retry=True, progress=sweep)
        for tracked in ready:
            results[tracked.label] = get(tracked.ref)
            log.info("%s: score %d", tracked.label, results[tracked.label]["score"])

best = max(results, key=lambda label: results[label]["score"])
print(f"{len(results)} configurations, best {best} (score {results[best]['score']})")
here = os.path.dirname(os.path.abspath(scoring.__file__))
print("workers ran the shipped copy:", all(result["code_dir"] != here for result in results.values()))
