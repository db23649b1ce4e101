"""Which settings the outputs were rendered with: a full render leaves a marker file named by their hash.

Feeds and pages depend on the database *and* on settings (``site.base_url`` and title, ``output.max_entries``,
the digest's layout) and on this version's templates. A sync only re-renders what changed in the database,
so after a settings change (or an upgrade) the unchanged files would keep the old ones for good; when the
marker of the current settings is missing, the next sync renders everything once. Kept apart from
``publish`` so that a no-op sync can check it without importing the renderers.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

RENDERED_DIR = ".syndicator"  # holds one file named by the settings the outputs were rendered with


def render_settings(settings: Settings) -> bytes:
    """What every output depends on besides the database: the site and output settings, the digest's layout,
    and this version (its templates), as canonical JSON."""
    from . import __version__

    doc = {
        "version": __version__,
        "site": settings.site.model_dump(mode="json"),
        "max_entries": settings.output.max_entries,
        "digest": settings.digest.model_dump(mode="json", exclude={"email", "time", "day"}),
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def rendered_mark(settings: Settings) -> str:
    """The marker file of a full render with these settings: its name carries their hash, its bytes are
    ``render_settings``."""
    return f"{RENDERED_DIR}/rendered-{hashlib.sha256(render_settings(settings)).hexdigest()[:16]}.json"


def published_files(settings: Settings) -> tuple[str, str]:
    """The outputs whose presence says everything was published, with the current settings: the front page
    (written by every publish) and the marker of the last full render."""
    return "index.html", rendered_mark(settings)
