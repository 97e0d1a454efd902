"""chia.cli: the ``chia`` command line (distribution chia-ops).

:mod:`chia.cli.main` holds the root group and the script's entry point; each
command group has a module of its own: :mod:`chia.cli.run`,
:mod:`chia.cli.status`, :mod:`chia.cli.profile`, :mod:`chia.cli.cancel`,
:mod:`chia.cli.kv`, :mod:`chia.cli.cache` and :mod:`chia.cli.bypass`. ``kv``,
``cache`` and ``bypass`` (and ``run --bypass/--cache-dir``) need the optional
distributions behind chia-ops' extras (``chia-ops[kv]``, ``[cache]``,
``[bypass]``, ``[all]``) and say which to install when it is missing.
Underscore modules are private.
"""
