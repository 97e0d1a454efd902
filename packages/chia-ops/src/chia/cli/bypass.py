"""``chia bypass``: bypass configuration tools (chia-bypass-cache, the ``[bypass]`` extra).

Stable. Owns the ``bypass`` command group: ``validate`` checks a bypass/cache
YAML file with chia-bypass-cache's own parser, without a cluster, and with
``--module`` imports the loop to check that every key names one of its
``@ChiaFunction`` functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import click

from chia.cli._exit import CliError, ExitCode
from chia.cli._extras import BYPASS, needs

__all__ = ["bypass"]


@click.group()
def bypass() -> None:
    """Bypass configuration tools (needs chia-bypass-cache)."""


def _import_loop(spec: str) -> None:
    """Import the loop named by ``spec`` (a module name or a ``.py`` path) as a module, not as ``__main__``.

    Its ``if __name__ == "__main__":`` block does not run; its module-level
    ``@ChiaFunction`` functions are defined. A path's directory is on ``sys.path``
    while it imports, as for ``python loop.py``.
    """
    path = Path(spec)
    if spec.endswith(".py") or path.is_file() or "/" in spec:
        if not path.is_file():
            raise CliError(f"--module {spec!r}: no such file", ExitCode.NOT_FOUND)
        name = path.stem
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise click.BadParameter(f"{spec!r} is not a Python file", param_hint="--module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.path.insert(0, str(path.resolve().parent))
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(name, None)
            raise CliError(f"--module {spec!r}: importing it failed: {type(exc).__name__}: {exc}") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and spec.startswith(exc.name):
            raise CliError(f"--module {spec!r}: no module of that name ({exc})", ExitCode.NOT_FOUND) from None
        raise CliError(f"--module {spec!r}: importing it failed: ModuleNotFoundError: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise CliError(f"--module {spec!r}: importing it failed: {type(exc).__name__}: {exc}") from None


@bypass.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--module",
    "module",
    metavar="MODULE|PATH",
    help="Import this loop (module name or .py path) and fail (exit 5) on any key naming none of its @ChiaFunctions.",
)
def bypass_validate(file: Path, module: str | None) -> None:
    """Check a bypass/cache YAML FILE without a cluster."""
    with needs(BYPASS, "chia bypass"):
        from chia.base.bypass import UnknownFunctionError, validate_config
    if not file.exists():
        raise CliError(f"bypass config {str(file)!r} does not exist", ExitCode.NOT_FOUND)
    if file.is_dir():
        raise click.BadParameter(f"{str(file)!r} is a directory, not a YAML file", param_hint="FILE")
    try:
        validate_config(str(file))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if module is not None:
        _import_loop(module)
        try:
            validate_config(str(file), check_names=True)
        except UnknownFunctionError as exc:
            raise CliError(f"{exc} (loop: {module})", ExitCode.NOT_FOUND) from None
    click.echo(f"{file}: valid" + (f" for {module}" if module is not None else ""))
