"""One real server per test module (see api_world)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_world import World, running_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("api")) as w:
        yield w
