"""Start-up cost of a no-op sync: an up-to-date database is opened without importing Alembic, and the
render package does not pull in feedgen or Jinja2 until something is rendered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from syndicator.storage.engine import MIGRATIONS, head_revision, open_database


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_head_revision_is_alembics_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_an_up_to_date_database_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    open_database(url)  # creates and migrates (Alembic)
    loaded = _modules_after(f"from syndicator.storage.engine import open_database\nopen_database({url!r})")
    assert not any(m == "alembic" or m.startswith("alembic.") for m in loaded)


def test_an_outdated_database_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = open_database(url)
    with engine.begin() as conn:  # pretend the newest migration never ran … and its table is not there
        conn.execute(text("DROP TABLE leases"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    engine = open_database(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        conn.execute(text("SELECT count(*) FROM leases"))


def test_the_render_package_loads_feedgen_and_jinja_only_when_used() -> None:
    loaded = _modules_after("import syndicator.render.write\nimport syndicator.recovery")
    assert "feedgen" not in loaded and "jinja2" not in loaded
    loaded = _modules_after("from syndicator.render import render_feed")
    assert "feedgen" in loaded


def test_a_no_op_sync_imports_neither_renderers_nor_normalizer(tmp_path: Path, archive: Path) -> None:
    from conftest import write_config

    config = write_config(tmp_path, archive, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    run = (f"from syndicator.cli import main\n"
           f"try:\n    main(['--config', {str(config)!r}, '-q', 'sync', '--no-progress'])\n"
           f"except SystemExit as e:\n    assert not e.code, e.code\n")
    first = _modules_after(run)  # the first sync stores and renders
    assert "syndicator.normalize" in first and "syndicator.publish" in first
    loaded = _modules_after(run)  # nothing changed since
    unwanted = {"syndicator.normalize", "syndicator.parallel", "syndicator.publish", "syndicator.coordination",
                "feedgen", "jinja2"}
    assert not unwanted & loaded, unwanted & loaded
