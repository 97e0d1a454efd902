"""``chia.base.tools`` is a PEP 420 namespace package: other distributions add tool modules to it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import chia.base.tools

# A second distribution's source tree: only its own module, no __init__.py anywhere, as PEP 420 wants.
_THIRD_PARTY_TOOL = """
from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate


class MyTool(ChiaToolTemplate):
    def setup(self) -> None:
        self.mcp.add_tool(self.hello, name=f"{self.name}_hello")

    def hello(self) -> str:
        return "hello from another distribution"
"""

_CHECK = textwrap.dedent(
    """
    import chia.base.tools
    from chia.base.tools.BashTool import BashTool
    from chia.base.tools.MyTool import MyTool
    from chia.base.tools.serve import serve
    from chia.base.tools.ChiaTool import ToolServerConfig

    assert issubclass(MyTool, chia.base.tools.ChiaTool.ChiaTool) and BashTool.__module__ == "chia.base.tools.BashTool"
    tool = serve(MyTool, "mine", server_config=ToolServerConfig(base_port=0))
    try:
        print(tool.url.rsplit(":", 1)[1].split("/", 1)[1], tool.hello().replace(" ", "_"), len(chia.base.tools.__path__))
    finally:
        tool.stop()
    """
)


def test_tools_is_a_namespace_package() -> None:
    assert getattr(chia.base.tools, "__file__", None) is None
    assert not any((Path(entry) / "__init__.py").exists() for entry in chia.base.tools.__path__)


def test_another_distribution_adds_a_tool_module_to_chia_base_tools(tmp_path: Path) -> None:
    # Issue 13 point 22: as in chialoops, chia.base.tools.MyTool may come from another distribution.
    portion = tmp_path / "other_dist" / "chia" / "base" / "tools"
    portion.mkdir(parents=True)
    (portion / "MyTool.py").write_text(_THIRD_PARTY_TOOL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "other_dist"), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mine/mcp", "hello_from_another_distribution", "2"]
