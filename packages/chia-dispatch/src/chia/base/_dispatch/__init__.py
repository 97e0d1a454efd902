"""chia-dispatch's private core: what the public modules of chia-dispatch build on.

Private to chia-dispatch: only its own modules import from here, and any
name here may change in any release. Imports run one way: the public modules
(``chia.base.ChiaFunction``, ``dispatch_hooks``, ``pid_registry``,
``dispatch_proxy``, ``chia_wait``) import these modules, never the reverse.
Within the package: ``seam``, ``refs``, ``proc_tree``, ``job_actors`` and
``stuck`` import no chia module; ``registry`` builds on ``proc_tree``,
``job_actors`` and ``refs``; ``pid_tracking`` and ``proxy`` on ``registry``.
``tests/test_import_layering.py`` holds the package to this.
"""
