from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tokenboard.kit.runtime import GENERATION_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_freezes_the_startup_heap_and_spaces_out_old_collections(restored_gc: None) -> None:
    tune_gc()
    assert gc.get_freeze_count() > 1000  # the modules and objects loaded so far
    assert gc.get_threshold() == GENERATION_THRESHOLDS
    assert GENERATION_THRESHOLDS[0] == 700  # the youngest generation keeps CPython's default
