"""Two processes making a new ledger at once: the one whose CREATE TABLE loses the race
must use the table the other made, not fail (seen in CI as "table decisions already
exists" when two `factory publish` runs started together)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from factory import ledger


def test_a_table_another_process_created_meanwhile_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}", future=True)
    real = ledger.Base.metadata.create_all
    calls: list[int] = []

    def racing(bind: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # the other process made the table between check and create
            real(bind)
            raise OperationalError("CREATE TABLE decisions", {},
                                   Exception("table decisions already exists"))
        real(bind, *args, **kwargs)

    monkeypatch.setattr(ledger.Base.metadata, "create_all", racing)
    ledger._create_tables(engine)
    assert len(calls) == 2


def test_another_database_error_is_not_swallowed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}", future=True)

    def broken(bind: Any, *args: Any, **kwargs: Any) -> None:
        raise OperationalError("CREATE TABLE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ledger.Base.metadata, "create_all", broken)
    with pytest.raises(OperationalError):
        ledger._create_tables(engine)
