"""A throwaway PostgreSQL cluster for the tests: initdb into a temp directory, a server listening on
a Unix socket in that directory only (no TCP port), removed afterwards.

PostgreSQL refuses to run as root (CI runs as root), so there the server runs as the unprivileged
``nobody`` user through ``setpriv``, and the directory is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin; "
    "install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql@15`) to "
    "run the PostgreSQL store tests"
)


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PostgresCluster:
    def __init__(self, bindir: Path, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        # /tmp: short (a socket path has a 107-byte limit) and open to the server's user, which a
        # private $TMPDIR may not be.
        self.root = Path(tempfile.mkdtemp(prefix="serac-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
            ]
        self.user = "serac"
        self.database = "serac"

    def _run(self, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.root, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n{result.stderr[-2000:]}\n{log}"
            )

    def start(self) -> "PostgresCluster":
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-instructions"
        )
        # fsync off for tests: they kill serac processes, never PostgreSQL itself, so what they
        # check (an acknowledged edit is committed) does not depend on it, and commits are faster.
        durability = "" if self.fsync else "-c fsync=off -c full_page_writes=off "
        options = (
            f"-k {self.root} -c listen_addresses='' {durability}-c shared_buffers=16MB -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )
        self.execute(f"CREATE DATABASE {self.database}")
        return self

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        options = f"&options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://{self.user}@/{database}?host={self.root}{options}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def new_schema_url(self) -> str:
        """A URL whose tables land in a new, empty schema: a fresh store per test in milliseconds."""
        schema = "t_" + uuid.uuid4().hex[:12]
        self.execute(f"CREATE SCHEMA {schema}", self.database)
        return self.url(self.database, schema)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
