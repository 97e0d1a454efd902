"""Private implementation of :mod:`chia.base.bypass` and :mod:`chia.base.cache`.

Nothing here is public API: import from those two modules. The modules of
this package are named after their owner (``bypass_*``, ``cache_*``);
the package README lists what each one owns.
"""
