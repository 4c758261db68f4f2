"""load_or_create_key: the key of development and tests, made once and kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.key_file import load_or_create_key


def test_the_first_use_makes_a_random_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "nested" / ".secret-key"

    key = load_or_create_key(path)

    assert len(key) >= 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key
    assert list(path.parent.iterdir()) == [path]  # no draft left behind


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / ".secret-key"

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(32)))

    assert len(keys) == 1
    assert list(tmp_path.iterdir()) == [path]


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    path = tmp_path / ".secret-key"
    path.write_text("an operator's own key\n")

    assert load_or_create_key(path) == "an operator's own key"


def test_an_empty_key_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / ".secret-key"
    path.write_text("\n")

    with pytest.raises(ValueError, match="delete it"):
        load_or_create_key(path)
