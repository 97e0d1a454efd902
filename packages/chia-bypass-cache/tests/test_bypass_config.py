"""The bypass/cache YAML format and its validation (no cluster)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from chia.base.bypass import Bypass, BypassConfigError, validate_config

WriteYaml = Callable[..., str]


def test_long_form_shorthand_tags_and_data(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rec.json").write_text("{}")
    path = write_yaml(
        """
bypass:
  long_form:
    bypass: true
    data: data/rec.json
    tags: ["iter0_.*", "warmup"]
  shorthand: true
  disabled: false
  pkg.mod.Class.method:
    bypass: true
    data: data/rec.json
cache:
  cached: true
  cached_tagged:
    cache: true
    tags: ["iter.*"]
"""
    )
    validate_config(path)
    bypass = Bypass(path)
    assert bypass.active
    assert bypass.get_provider_info("long_form")[1] == "data/rec.json"  # as written
    assert bypass.is_bypassed("long_form", "iter0_opt2")
    assert not bypass.is_bypassed("long_form", "iter1_opt2")
    assert not bypass.is_bypassed("long_form", "xiter0_")  # fullmatch, not search
    assert not bypass.is_bypassed("long_form")  # a tags list needs a tag
    assert not bypass.is_bypassed("disabled")
    assert not bypass.is_bypassed("not_listed")


def test_empty_file_and_sections_are_valid(write_yaml: WriteYaml) -> None:
    validate_config(write_yaml(""))
    validate_config(write_yaml("bypass:\ncache:\n"))
    assert not Bypass(write_yaml("bypass: {}\n")).active


@pytest.mark.parametrize(
    ("text", "function", "key", "fragment"),
    [
        ("- just\n- a list\n", None, None, "must be a mapping"),
        ("bypas:\n  f: true\n", None, None, "unknown top-level key 'bypas': did you mean 'bypass'?"),
        ("Cache:\n  f: true\n", None, None, "unknown top-level key 'Cache': did you mean 'cache'?"),
        ("bypass:\n  - f\n", None, None, "section 'bypass' must map function names"),
        ("bypass:\n  f:\n    bypass: true\n    dat: x\n", "f", "dat", "unknown key: did you mean 'data'?"),
        ("bypass:\n  f:\n    bypass: true\n    dta: x\n", "f", "dta", "did you mean 'data'? (valid keys: bypass"),
        ("bypass:\n  f:\n    bypas: true\n", "f", "bypas", "did you mean 'bypass'?"),
        ("bypass:\n  f:\n    bypass: true\n    tag: [x]\n", "f", "tag", "did you mean 'tags'?"),
        ("bypass:\n  f:\n    bypass: true\n    cache: true\n", "f", "cache", "is a key of the cache: section"),
        ("bypass:\n  f:\n    bypass: 'yes'\n", "f", "bypass", "must be true or false, got 'yes'"),
        ("bypass:\n  f:\n    bypass: 1\n", "f", "bypass", "must be true or false, got 1"),
        ("bypass:\n  f:\n    data: x\n", "f", "bypass", "missing"),
        ("bypass:\n  f: yes please\n", "f", None, "entry must be true, false or a mapping"),
        ("bypass:\n  f:\n    bypass: true\n    tags: ['(']\n", "f", "tags", "not a valid regular expression"),
        ("bypass:\n  f:\n    bypass: true\n    tags: 'iter.*'\n", "f", "tags", "must be a non-empty list"),
        ("bypass:\n  f:\n    bypass: true\n    tags: []\n", "f", "tags", "must be a non-empty list"),
        ("bypass:\n  f:\n    bypass: true\n    tags: [3]\n", "f", "tags", "is not a string"),
        ("bypass:\n  f:\n    bypass: true\n    data: " + "x" * 300 + "\n", "f", "data", "is too long"),
        ("bypass:\n  f:\n    bypass: true\n    data: 7\n", "f", "data", "must be a non-empty path string"),
        ("cache:\n  g:\n    cache: maybe\n", "g", "cache", "must be true or false"),
        ("cache:\n  g:\n    cache: true\n    data: x\n", "g", "data", "is a key of the bypass: section"),
        ("cache:\n  g:\n    cache: true\n    tags: ['[']\n", "g", "tags", "not a valid regular expression"),
        ("bypass:\n  3: true\n", None, None, "invalid function key 3"),
        ("bypass:\n  'my fn': true\n", None, None, "invalid function key 'my fn'"),
        ("bypass:\n  off: true\n", None, None, "quote the name"),
        ("bypass:\n  f: true\n  f: false\n", None, None, "duplicate key 'f'"),
        ("bypass: [unclosed\n", None, None, "is not valid YAML"),
        ("!!set {a, b}: x\n", None, None, "found a set as a key"),
        ("bypass:\n  ? {f: 1}\n  : true\n", None, None, "found a dict as a key"),
    ],
)
def test_invalid_files_name_file_function_and_key(
    write_yaml: WriteYaml, text: str, function: str | None, key: str | None, fragment: str
) -> None:
    path = write_yaml(text)
    with pytest.raises(BypassConfigError) as caught:
        validate_config(path)
    error = caught.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert message.startswith(path)
    assert fragment in message
    assert (error.path, error.function, error.key) == (path, function, key)
    if function is not None:
        assert f"function {function!r}" in message
    if key is not None:
        assert f"key {key!r}" in message
    with pytest.raises(BypassConfigError):
        Bypass(path)  # the same errors at load


def test_missing_yaml_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        validate_config(missing)
    with pytest.raises(FileNotFoundError):
        Bypass(missing)


def test_error_type_is_public_and_importable() -> None:
    assert BypassConfigError.__module__ == "chia.base.bypass"
    assert issubclass(BypassConfigError, ValueError)


def test_absolute_and_home_relative_data_paths(write_yaml: WriteYaml, tmp_path: Path) -> None:
    record = tmp_path / "abs.txt"
    record.write_text("x")
    path = write_yaml(f"bypass:\n  f:\n    bypass: true\n    data: {record}\n")
    assert Bypass(path).get_provider_info("f")[1] == str(record)
    assert os.path.isabs(str(record))


def test_reference_files_load_notes_profile_and_missing_data(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 point 12: what the reference's users' files carry loads; a data file may come later."""
    path = write_yaml(
        """
profile:
  output: trace.json
bypass:
  simulate:
    bypass: true
    data: recordings/later.json
    notes: recorded on the big machine, 2024-03
    description: free text
  build: true
cache:
  simulate:
    cache: true
    comment: anything
"""
    )
    validate_config(path)
    bypass = Bypass(path)
    assert bypass.is_bypassed("simulate") and bypass.is_bypassed("build") is False  # build: no provider, no data
    assert bypass.get_provider_info("simulate")[1] == "recordings/later.json"


def test_relative_data_paths_start_at_the_working_directory(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data path is not resolved against the YAML's directory (a change from chia 0.1)."""
    yaml_dir = tmp_path / "configs"
    yaml_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (yaml_dir / "config.yaml").write_text("bypass:\n  f:\n    bypass: true\n    data: rec.txt\n")
    monkeypatch.chdir(work)
    bypass = Bypass(str(yaml_dir / "config.yaml"))
    assert bypass.get_provider_info("f")[1] == "rec.txt"
    state = bypass.get_state()
    assert state["data"] == {"f": "rec.txt"}
    assert str(work / "rec.txt") in state["roots"]
