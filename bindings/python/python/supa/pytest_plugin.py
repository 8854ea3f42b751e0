"""pytest fixtures that give a test suite a throwaway Supa (loaded through
the `pytest11` entry point when the `supa` wheel is installed):

- `supa_platform` (session): `supa up` on free ports in a temporary
  directory with its embedded PostgreSQL, stopped and removed after.
- `supa_project`: a fresh project with its keys and the suite's migrations,
  deleted after the test.
- `supabase_client` / `supabase_admin_client`: a real `supabase.Client` of
  that project with its publishable or its secret key.

Migrations follow the Supabase CLI's layout: `supabase/migrations/*.sql`
in name order, then `supabase/seed.sql`. The `supabase` folder next to the
rootdir is used when it exists; `--supa-migrations=PATH` (or the ini option
`supa_migrations`) names another, `none` turns them off.

Projects are made ahead of the tests that take them (`supa_project_pool`,
1 unless set; 0 makes each one when asked), and deleted in the background
after, so a test waits for neither."""

from __future__ import annotations

import queue
import threading
import warnings
from typing import Optional

import pytest

from .platform import Migrations, Platform, SupaProject


def pytest_addoption(parser):
    group = parser.getgroup("supa", "a throwaway Supa for tests")
    group.addoption(
        "--supa-migrations",
        metavar="PATH",
        help="the supabase folder (migrations/*.sql, seed.sql) applied to each project; 'none' for none",
    )
    parser.addini("supa_migrations", "the supabase folder applied to each project ('none': none)")
    parser.addini("supa_project_pool", "projects made ahead of the tests that take them (default 1)", default="1")


def find_migrations(config) -> Optional[Migrations]:
    """The migrations the options name, or the rootdir's `supabase` folder."""
    value = config.getoption("supa_migrations") or config.getini("supa_migrations")
    if value == "none":
        return None
    if value:
        return Migrations.find(config.rootpath / value)
    default = config.rootpath / "supabase"
    if (default / "migrations").is_dir() or (default / "seed.sql").is_file():
        return Migrations.find(default)
    return None


class ProjectPool:
    """Projects made on a background thread before they are asked for, and
    deleted on the platform's event loop after, so neither is on a test's
    path. A creation that fails is raised in the test that would have
    taken the project."""

    def __init__(self, platform: Platform, migrations: Optional[Migrations], size: int):
        self.platform = platform
        self.migrations = migrations
        self.ready: queue.Queue = queue.Queue(maxsize=max(size, 1))
        self.stopping = threading.Event()
        self.deletions = []
        self.filler = None
        if size > 0:
            self.filler = threading.Thread(target=self._fill, name="supa-project-pool", daemon=True)
            self.filler.start()

    def _create(self):
        try:
            return self.platform.create_project(migrations=self.migrations)
        except Exception as e:  # handed to the test that takes it
            return e

    def _fill(self):
        while not self.stopping.is_set():
            made = self._create()
            while True:
                try:
                    self.ready.put(made, timeout=0.2)
                    break
                except queue.Full:
                    if self.stopping.is_set():
                        self._discard(made)
                        return

    def take(self) -> SupaProject:
        made = self.ready.get(timeout=300) if self.filler else self._create()
        if isinstance(made, Exception):
            raise made
        return made

    def give_back(self, project: SupaProject):
        """Deletes the project without waiting for it."""
        self.deletions.append(self.platform.submit(self.platform.management.delete_project(project.ref)))

    def _discard(self, made):
        if isinstance(made, SupaProject):
            self.give_back(made)

    def close(self):
        self.stopping.set()
        if self.filler:
            self.filler.join(timeout=120)
        while not self.ready.empty():
            self._discard(self.ready.get_nowait())
        for deletion in self.deletions:
            try:
                deletion.result(timeout=60)
            except Exception as e:
                warnings.warn(f"a test project was not deleted: {e}", stacklevel=1)


@pytest.fixture(scope="session")
def supa_platform():
    """`supa up` for the session: free ports, a temporary directory, its
    own embedded PostgreSQL (no fsync: nothing in it outlives the run)."""
    with Platform.start() as platform:
        yield platform


@pytest.fixture(scope="session")
def supa_project_pool(supa_platform, pytestconfig):
    """Where `supa_project` takes its projects from."""
    size = int(pytestconfig.getini("supa_project_pool"))
    pool = ProjectPool(supa_platform, find_migrations(pytestconfig), size)
    yield pool
    pool.close()


@pytest.fixture
def supa_project(supa_project_pool) -> SupaProject:
    """A fresh project with its keys (`.url`, `.publishable_key`,
    `.secret_key`) and the suite's migrations; deleted after the test."""
    project = supa_project_pool.take()
    yield project
    supa_project_pool.give_back(project)


@pytest.fixture
def supabase_client(supa_project):
    """A `supabase.Client` of `supa_project` with its publishable key."""
    return supa_project.client("publishable")


@pytest.fixture
def supabase_admin_client(supa_project):
    """A `supabase.Client` of `supa_project` with its secret key (bypasses
    row level security, may use the auth admin API)."""
    return supa_project.client("secret")
