"""A ChiaFunction's ``chia_remote_blocking`` registered as an MCP tool (issue 13, point 2).

``tool.mcp.add_tool(fn.chia_remote_blocking, name=...)`` must expose a proper
tool: FastMCP reads its name, docstring and signature, and a call through a real
MCP client runs the function remotely.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import ray
from fastmcp import Client

from chia.base.ChiaFunction import ChiaFunction
from chia.base.tools.ChiaTool import ChiaTool

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def simulate(config: str, cores: int = 4) -> dict[str, Any]:
    """Simulate one configuration on the simulator node."""
    return {"config": config, "cores": cores, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


class SimulatorTool(ChiaTool):
    def setup(self) -> None:
        self.mcp.add_tool(simulate.chia_remote_blocking, name=f"{self.name}_simulate")


def test_chia_remote_blocking_is_an_mcp_tool_that_runs_remotely(cluster: Any) -> None:
    tool = SimulatorTool("sim_tool")
    try:

        async def exchange() -> tuple[Any, Any]:
            async with Client(tool.url) as client:
                listed = {t.name: t for t in await client.list_tools()}
                result = await client.call_tool("sim_tool_simulate", {"config": "c8", "cores": 8})
                return listed["sim_tool_simulate"], result.structured_content

        described, value = asyncio.run(exchange())
    finally:
        tool.stop()
    assert described.description == "Simulate one configuration on the simulator node."
    schema = described.input_schema
    assert set(schema["properties"]) == {"config", "cores"}
    assert schema["required"] == ["config"]
    assert value["config"] == "c8" and value["cores"] == 8
    assert value["node"] == cluster.node_ids["node_b"]  # ran where the ChiaFunction's options put it
