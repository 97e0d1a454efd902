"""``chia run``: an embedded Ray for a script, and bypass + cache + profiling set up for it."""

from __future__ import annotations

import importlib
import json
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from chia.cli._exit import ExitCode
from chia.cli.main import cli
from chia.trace import export

pytestmark = pytest.mark.usefixtures("no_collector")

RunChia = Callable[..., subprocess.CompletedProcess[str]]

LOOP_SCRIPT = """
import sys, json
import ray
from chia.base.ChiaFunction import ChiaFunction, get

@ChiaFunction(num_cpus=1)
def double(x):
    return 2 * x

assert ray.is_initialized()
values = get([double.chia_remote(i) for i in range(5)])
with open(sys.argv[1], "w") as out:
    json.dump({"argv": sys.argv[1:], "values": values, "name": __name__}, out)
sys.exit(int(sys.argv[2]))
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.ray_compat
def test_embedded_ray_runs_the_script_profiles_it_and_stops(tmp_path: Path, run_chia: RunChia) -> None:
    script = write(tmp_path / "loop.py", LOOP_SCRIPT)
    out, profile = tmp_path / "out.json", tmp_path / "profile"
    result = run_chia("run", "--num-cpus", "1", "--profile", str(profile), str(script), str(out), "3", timeout=300)
    assert result.returncode == 3, result.stderr
    assert json.loads(out.read_text()) == {"argv": [str(out), "3"], "values": [0, 2, 4, 6, 8], "name": "__main__"}
    assert "starting an embedded local Ray instance" in result.stderr
    assert "stopping the embedded Ray instance" in result.stderr
    trace = json.loads((profile / "chia-trace.json").read_text())
    assert sum(e["ph"] == "X" for e in trace["traceEvents"]) == 5
    summary = (profile / "chia-summary.txt").read_text().splitlines()[1].split()
    assert summary[:3] == ["__main__.double", "real", "5"]
    assert (profile / "chia-report.html").read_text().count('<g class="fn') == 1


def test_a_failing_script_exits_1_and_still_writes_its_profile(cluster: Any, tmp_path: Path) -> None:
    script = write(
        tmp_path / "boom.py",
        """
        from chia.base.ChiaFunction import ChiaFunction, get

        @ChiaFunction(num_cpus=0)
        def explode():
            raise RuntimeError("kaboom")

        get(explode.chia_remote())
    """,
    )
    result = CliRunner().invoke(cli, ["run", "--profile", str(tmp_path / "p"), str(script)])
    assert result.exit_code == 1
    assert "kaboom" in result.stderr and "exited with code 1" in result.stderr
    (call,) = export.load_profile(tmp_path / "p").calls
    assert call.error is not None and "RuntimeError" in call.error


def test_usage_errors(tmp_path: Path) -> None:
    script = write(tmp_path / "noop.py", "pass\n")
    runner = CliRunner()
    alone = runner.invoke(cli, ["run", "--cache-dir", str(tmp_path / "c"), str(script)])
    assert alone.exit_code == 2 and "--cache-dir and --cache-size go together" in alone.stderr
    bad_size = runner.invoke(cli, ["run", "--cache-dir", str(tmp_path / "c"), "--cache-size", "lots", str(script)])
    assert bad_size.exit_code == 2 and "cache size 'lots' is not a positive number" in bad_size.stderr
    missing = runner.invoke(cli, ["run", str(tmp_path / "absent.py")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


@pytest.fixture
def bypass_and_cache_reset() -> Iterator[None]:
    pytest.importorskip("chia.base.bypass", reason="chia-bypass-cache is not installed")
    yield
    importlib.import_module("chia.base.bypass").Bypass(yaml_path=None)  # the active bypass now does nothing
    importlib.import_module("chia.base.cache").stop_cache()


SETUP_SCRIPT = """
import json, sys
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.bypass import get_active_bypass

@ChiaFunction(num_cpus=0)
def slow_square(x):
    raise AssertionError("bypassed: never runs")

@ChiaFunction(num_cpus=0)
def cube(x):
    return x ** 3

def replay_square(tag, data_path, x):
    return x * x

get_active_bypass().set_provider("slow_square", replay_square)
json.dump({
    "square": get(slow_square.chia_remote(7)),
    "cube": get(cube.options(_chia_tag="cube3").chia_remote(3)),
}, open(sys.argv[1], "w"))
"""


@pytest.mark.usefixtures("bypass_and_cache_reset")
def test_bypass_cache_and_profile_are_set_up_for_the_script(cluster: Any, tmp_path: Path) -> None:
    start_cache = importlib.import_module("chia.base.cache").start_cache
    config = write(
        tmp_path / "chia.yaml",
        """
        bypass:
          slow_square: true
        cache:
          cube: true
    """,
    )
    script = write(tmp_path / "setup.py", SETUP_SCRIPT)
    out, cache_dir, profile = tmp_path / "out.json", tmp_path / "cache", tmp_path / "profile"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "run",
            "--bypass",
            str(config),
            "--cache-dir",
            str(cache_dir),
            "--cache-size",
            "1MB",
            "--profile",
            str(profile),
            str(script),
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"square": 49, "cube": 27}
    assert "stopped the cache actor" in result.stderr
    assert runner.invoke(cli, ["cache", "ls"]).exit_code == ExitCode.NOT_FOUND  # what chia run started, it stopped
    warm = start_cache(size=1, units="MB", cache_dir_path=cache_dir)
    assert ray.get(warm.keys.remote()) == ["cube3"]  # the entry outlives the actor
    calls = {call.function.rsplit(".", 1)[-1]: call for call in export.load_profile(profile).calls}
    assert calls["slow_square"].bypassed and calls["slow_square"].provider == "__main__.replay_square"
    assert calls["cube"].cache_write and calls["cube"].tag == "cube3" and not calls["cube"].bypassed


def test_a_bad_bypass_file_fails_before_running(tmp_path: Path) -> None:
    pytest.importorskip("chia.base.bypass", reason="chia-bypass-cache is not installed")
    config = write(tmp_path / "bad.yaml", "bypass:\n  f:\n    bypass: maybe\n")
    script = write(tmp_path / "never.py", "raise SystemExit('must not run')\n")
    result = CliRunner().invoke(cli, ["run", "--bypass", str(config), str(script)])
    assert result.exit_code == 1
    assert f"{config}: function 'f', key 'bypass'" in result.stderr and "must not run" not in result.output


def test_a_bad_cache_size_is_refused_before_connecting(tmp_path: Path, run_chia: RunChia) -> None:
    script = write(tmp_path / "noop.py", "pass\n")
    result = run_chia("run", "--cache-dir", str(tmp_path / "c"), "--cache-size", "4XB", str(script))
    assert result.returncode == 2, result.stderr
    assert "--cache-size" in result.stderr and "unknown units 'XB'; valid units: B, KB, MB, GB, TB" in result.stderr
    assert "Ray" not in result.stderr.replace("Ray instance", "")  # nothing started, nothing contacted
    assert "starting an embedded local Ray instance" not in result.stderr


def test_a_second_ray_init_gets_a_hint(cluster: Any, tmp_path: Path, run_chia: RunChia) -> None:
    script = write(tmp_path / "init.py", "import ray\nray.init()\n")
    result = run_chia("run", "--address", cluster.address, str(script))
    assert result.returncode == 1, result.stderr
    assert (
        f"called ray.init(), but chia run already connected this process to the Ray cluster at {cluster.address}"
        in (result.stderr)
    )
    assert "`if not ray.is_initialized()`" in result.stderr


TWICE_SCRIPT = """
import ray
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.cache import get_active_cache

@ChiaFunction(num_cpus=0)
def square(x):
    return x * x

@ray.remote(num_cpus=0)
class Anonymous:
    def ping(self):
        return "pong"

anonymous = Anonymous.options(name="left_in_no_namespace", lifetime="detached").remote()  # Ray warns about it
ray.get(anonymous.ping.remote())
hit, value = ray.get(get_active_cache().read.remote("square3"))
print("cached before:", value if hit else None)
print("squares:", get([square.options(_chia_tag=f"square{i}").chia_remote(i) for i in range(4)]))
ray.kill(anonymous)
"""


def test_the_same_run_twice_against_a_cluster(cluster: Any, tmp_path: Path, run_chia: RunChia) -> None:
    pytest.importorskip("chia.base.cache", reason="chia-bypass-cache is not installed")
    config = write(tmp_path / "chia.yaml", "cache:\n  square: true\n")
    script = write(tmp_path / "loop.py", TWICE_SCRIPT)
    command = ["run", "--address", cluster.address, "--bypass", str(config), "--cache-dir", str(tmp_path / "cache")]
    first = run_chia(*command, "--cache-size", "1MB", str(script), timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "cached before: None\nsquares: [0, 1, 4, 9]\n"  # no Ray warning among the loop's lines
    second = run_chia(*command, "--cache-size", "1MB", str(script), timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "cached before: 9\nsquares: [0, 1, 4, 9]\n"  # the first run's entries, warm-started
    assert "stopped the cache actor" in second.stderr
    assert "anonymous namespace" in first.stderr + second.stderr  # Ray's warning: on stderr, not in the loop's stdout
    caches = [actor for actor in ray.util.list_named_actors(all_namespaces=True) if actor["name"] == "chia_cache"]
    assert caches == []
