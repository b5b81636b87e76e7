"""Progress bars that stay quiet where nobody is watching (CI, pytest) unless asked."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_bar(*, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar; disabled when ``LSS_JAX_NO_PROGRESS`` is set."""
    disable = disable or bool(os.environ.get("LSS_JAX_NO_PROGRESS"))
    return tqdm(disable=disable, file=sys.stderr, dynamic_ncols=True, **kwargs)
