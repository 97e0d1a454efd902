"""chia quickstart: dispatch a few @ChiaFunctions on Ray and print the results.

With no RAY_ADDRESS set, an embedded local Ray is started on loopback and
stopped at the end; with RAY_ADDRESS=host:port it runs on that cluster.

    scripts/dev demo
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

from chia.base.ChiaFunction import ChiaCallRemote, ChiaFunction, chia_actor, get


@ChiaFunction(num_cpus=1)
def cost(config: dict[str, int]) -> float:
    """A stand-in for a simulator: the cost of one design configuration."""
    return config["cores"] * 1.5 + config["cache_kb"] / 64


class Tuner:
    def __init__(self, scale: float) -> None:
        self.scale = scale

    @ChiaFunction(num_cpus=1)
    def score(self, cost_value: float) -> float:
        return round(self.scale / cost_value, 4)


@ray.remote(num_cpus=0)
class Leaderboard:
    def __init__(self) -> None:
        self.best: tuple[float, str] | None = None

    def offer(self, score: float, name: str) -> tuple[float, str]:
        if self.best is None or score > self.best[0]:
            self.best = (score, name)
        return self.best


def main() -> None:
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    configs = {f"c{cores}k{kb}": {"cores": cores, "cache_kb": kb} for cores in (1, 2, 4) for kb in (32, 64)}

    print("1. a sweep of remote calls, tagged per configuration")
    refs = {name: cost.options(_chia_tag=name).chia_remote(cfg) for name, cfg in configs.items()}
    costs = dict(zip(refs, get(list(refs.values())), strict=True))
    for name, value in costs.items():
        print(f"   cost[{name}] = {value}")

    print("2. a bound method on a worker (self travels with the call)")
    tuner = Tuner(scale=100.0)
    scores = {name: get(tuner.score.chia_remote(tuner, value)) for name, value in costs.items()}
    print(f"   local call: {tuner.score(4.0)}  remote calls: {scores}")

    print("3. an actor through chia_actor")
    board = chia_actor(Leaderboard.remote())  # type: ignore[attr-defined]
    for name, score in scores.items():
        best = get(board.offer.chia_remote(score, name))
    print(f"   best configuration: {best[1]} (score {best[0]})")

    print("4. ChiaCallRemote and chaining refs into calls")
    first = ChiaCallRemote(cost, {"cores": 8, "cache_kb": 128})
    print(f"   score of c8k128: {get(tuner.score.chia_remote(tuner, first))}")
    ray.shutdown()


if __name__ == "__main__":
    main()
