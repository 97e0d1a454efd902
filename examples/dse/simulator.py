"""A tiny stand-in for a hardware simulator, run as a real subprocess.

    python simulator.py build BUILD_DIR
    python simulator.py run BUILD_DIR CONFIG_JSON OUT_LOG [--hang MARKER]

``build`` writes a "binary" (a model file) into BUILD_DIR. ``run`` reads it,
spends a short, configuration-dependent time "simulating", writes a log and
prints a JSON result with the configuration's cost (lower is better).
``--hang`` simulates a wedged simulator: it starts a helper grandchild and
both sleep until killed (the marker makes them findable with ``pgrep -f``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

MODEL = {"area_per_core": 1.8, "area_per_kb": 0.02, "ipc_per_core": 0.9, "miss_penalty": 40.0}


def build(build_dir: Path) -> None:
    build_dir.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # a build takes a moment
    (build_dir / "model.json").write_text(json.dumps(MODEL))
    print(json.dumps({"built": str(build_dir / "model.json")}))


def run(build_dir: Path, config: dict[str, float], out_log: Path) -> None:
    model = json.loads((build_dir / "model.json").read_text())
    cores, cache_kb, freq = config["cores"], config["cache_kb"], config["freq_ghz"]
    time.sleep(0.2 + 0.05 * cores)  # bigger designs simulate longer
    miss_rate = 0.5 / (1.0 + cache_kb / 64.0)
    cpi = 1.0 / model["ipc_per_core"] + miss_rate * model["miss_penalty"] / 10.0
    runtime_s = 1e3 / (cores * freq * 1e3 / cpi)
    area = cores * model["area_per_core"] + cache_kb * model["area_per_kb"]
    cost = round(runtime_s * area, 6)
    out_log.parent.mkdir(parents=True, exist_ok=True)
    out_log.write_text(
        f"config {json.dumps(config, sort_keys=True)}\n"
        f"cpi {cpi:.4f}\nmiss_rate {miss_rate:.4f}\nruntime_s {runtime_s:.6f}\narea_mm2 {area:.3f}\ncost {cost}\n"
    )
    print(json.dumps({"cost": cost, "log": str(out_log)}))


def hang(marker: str) -> None:
    subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)", marker])
    while True:
        time.sleep(1)


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "build":
        build(Path(argv[1]))
    elif len(argv) >= 4 and argv[0] == "run":
        if "--hang" in argv:
            hang(argv[argv.index("--hang") + 1])
        run(Path(argv[1]), json.loads(argv[2]), Path(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
