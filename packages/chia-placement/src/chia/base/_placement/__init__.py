"""chia-placement's private helpers, under the public ``colocated`` and ``chia_kv_store``.

Private to chia-placement: only its own modules import from here, and any
name here may change in any release. ``fit`` (what a task demands, whether
a bundle holds it) and ``kv_file`` (the atomic on-disk snapshot of a
persistent store) import no chia module.
"""
