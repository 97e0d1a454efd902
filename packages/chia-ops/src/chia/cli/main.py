"""The ``chia`` command line: the root command group and the script's entry point.

Stable. Owns :data:`cli`, the click group every command module adds its
command to, and :func:`main`, the ``chia`` script. Failures print one clear
line and exit with the code of their kind (:class:`chia.cli._exit.ExitCode`:
1 other error, 2 usage, 3 no cluster, 4 authentication, 5 not found,
6 conflict)::

    chia run loop.py --iterations 3 --profile /tmp/prof
    chia profile summary /tmp/prof
    chia status
"""

from __future__ import annotations

import click

from chia.cli._exit import ExitCode
from chia.cli.bypass import bypass
from chia.cli.cache import cache
from chia.cli.cancel import cancel
from chia.cli.kv import kv
from chia.cli.profile import profile
from chia.cli.run import run
from chia.cli.status import status
from chia.cli.tools import tools

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chia-ops", prog_name="chia")
def cli() -> None:
    """Run chia loop scripts and steer a running chia cluster."""


for _command in (run, status, profile, bypass, kv, cache, cancel, tools):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chia`` script; returns the exit code. Stable."""
    try:
        result = cli.main(args=argv, prog_name="chia", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return int(ExitCode.ERROR)
    return result if isinstance(result, int) else 0
