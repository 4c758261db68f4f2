"""The API's tunings (entrypoints/http/tuning.py): each on by default, each off by its
setting."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.http.tuning import GC_THRESHOLD, apply_tunings
from entrypoints.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, whatever the test does to it."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_the_collector_is_tuned_by_default() -> None:
    settings = load_settings()
    assert settings.gc_tuning is True
    apply_tunings(settings)
    assert gc.get_threshold() == GC_THRESHOLD
    assert gc.get_freeze_count() > 0  # what start-up built is out of the collector's sight


@pytest.mark.usefixtures("collector")
def test_gc_tuning_false_leaves_the_collector_as_cpython_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("GC_TUNING", "false")
    settings = load_settings()
    assert settings.gc_tuning is False
    apply_tunings(settings)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
