"""MCP tool servers on Ray workers (distribution chia-tools).

Public modules, named as in the reference: ``ChiaTool`` (base class, ``start_router``,
``resolve_tool_url``), ``ChiaToolTemplate``, ``BashTool``, ``AsyncJobTool``,
``AsyncBashTool``, ``util`` and ``serve`` (serving without Ray). Nothing is re-exported
here: ``chia.base.tools.ChiaTool`` is the module, ``chia.base.tools.ChiaTool.ChiaTool``
the class.
"""
