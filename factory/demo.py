"""`make demo`: the main job on the embedded default, end to end.

Runs the stages that exist, in pipeline order, on the shipped approved set.
"""

from __future__ import annotations

import sys

from rich.console import Console

from factory import pipeline
from factory.config import load_settings
from factory.errors import FactoryError

console = Console()


def main() -> int:
    settings = load_settings()
    try:
        problems = pipeline.check_stage(settings)
        if problems:
            console.print("recipes.lock is out of date; locking against upstream ...")
            pipeline.lock_stage(settings)
        fetched = pipeline.fetch_stage(settings)
        console.print(f"[green]fetched and verified {len(fetched)} sdists[/] "
                      f"into {settings.sources_dir}")
    except FactoryError as exc:
        console.print(exc.diagnostics(), markup=False, highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
