"""MkDocs hooks for the docs build.

``docs/failure-modes.md`` is an optional page: when it exists at build time it is listed in the nav right
after "Errors and what they mean"; when it does not, the nav is unchanged (and the build stays strict).
"""

from __future__ import annotations

from pathlib import Path

OPTIONAL_PAGES = [("Failure modes", "failure-modes.md", "errors.md")]  # (title, page, listed after)


def on_config(config, **kwargs):
    nav = config.get("nav")
    if not nav:
        return config
    for title, page, after in OPTIONAL_PAGES:
        if not (Path(config["docs_dir"]) / page).is_file():
            continue
        if any(page in entry.values() for entry in nav if isinstance(entry, dict)):
            continue
        index = next((i for i, entry in enumerate(nav) if isinstance(entry, dict) and after in entry.values()),
                     len(nav) - 1)
        nav.insert(index + 1, {title: page})
    return config
