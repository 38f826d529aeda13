"""Backup and restore: pool files and metadata store, across SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import datenlabor
from conftest import shared_file
from datenlabor.access.principal import local_admin
from datenlabor.cli import app
from datenlabor.dashboards import versions as dashboards
from datenlabor.dashboards.demo import SPECS
from datenlabor.demo import write_applications_csv
from datenlabor.errors import DatenlaborError
from datenlabor.pool.catalog import DatasetMeta
from datenlabor.pool.secret import pool_key
from datenlabor.service.gate import Gate
from datenlabor.service.grants import add_grant, grants_of

PASSWORD = "ein-langes-passwort-fuer-tests"
runner = CliRunner()


class Run:
    """Exit code and messages of one CLI call, as ``datenlabor.cli.main`` reports them."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        result = runner.invoke(app, args, env=env)
        self.stdout = result.stdout
        self.output = result.output
        self.exit_code = result.exit_code
        if isinstance(result.exception, DatenlaborError):
            self.exit_code = result.exception.exit_code
            self.output += f"error: {result.exception}"
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception


def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    return Run(list(args), {"DATENLABOR_DATABASE_URL": "", "DATENLABOR_POOL": "", **(env or {})})


def populate(root: Path, url: str | None, tmp: Path) -> dict[str, Any]:
    """A pool as an authority has it: accounts, token, restricted data with a grant,
    versions (replace, upsert), a real GENESIS export, audit entries, a dashboard, keys."""
    pool = datenlabor.open(root, database_url=url, user="steward@bmi.example")
    gate = Gate(pool)
    admin = local_admin("backup-test")
    gate.accounts.add_org("bmi", "Bundesministerium des Innern")
    gate.accounts.add_org("nrw", "Land Nordrhein-Westfalen")
    gate.accounts.add_user("ana", org="nrw", role="analyst", password=PASSWORD)
    token = gate.accounts.create_token("ana", scope="read", days=None, name="backup test")
    v1 = write_applications_csv(tmp / "antraege.csv", months=3)
    v2 = write_applications_csv(tmp / "antraege_v2.csv", months=4, revised=True)
    meta = DatasetMeta(title="Anträge", publisher="bmi", visibility="restricted")
    pool.ingest(v1, dataset="antraege", key="Kreisschlüssel,Monat,Eingangskanal", meta=meta)
    pool.ingest(v2, dataset="antraege", mode="upsert")
    pool.ingest(shared_file("genesis/12411-0006.csv"), dataset="bevoelkerung")
    add_grant(gate, admin, "antraege", org="nrw", hide_columns=["Kreis"])
    gate.audit.log(admin, "account", detail={"note": "Ä Ö Ü ß €"})
    dashboards.put(pool, admin, "leistungen", (SPECS / "leistungsantraege.yaml").read_text())
    key = pool_key(pool.root, "cellkey")
    result = {
        "token": token,
        "key": key,
        "audit": gate.audit.verify(),
        "datasets": {
            d.slug: [v.version for v in pool.dataset(d.slug).versions()] for d in pool.datasets()
        },
    }
    pool.store.dispose()
    return result


def assert_same(
    src_root: Path, src_url: str | None, dst_root: Path, dst_url: str | None, facts: dict[str, Any]
) -> None:
    src = datenlabor.open(src_root, database_url=src_url)
    dst = datenlabor.open(dst_root, database_url=dst_url)
    try:
        assert {d.slug for d in dst.datasets()} == set(facts["datasets"])
        for slug, numbers in facts["datasets"].items():
            assert [v.version for v in dst.dataset(slug).versions()] == numbers
            for n in numbers:
                a, b = src.dataset(slug).read(version=n), dst.dataset(slug).read(version=n)
                assert b.num_rows > 0 and a.equals(b), (slug, n)
        gate = Gate(dst)
        audit = gate.audit.verify()
        assert audit.ok and audit.entries == facts["audit"].entries
        assert audit.head == facts["audit"].head
        assert gate.accounts.authenticate("ana", PASSWORD).username == "ana"
        assert gate.accounts.resolve_token(facts["token"]).username == "ana"
        [grant] = grants_of(gate, local_admin("t"), "antraege")
        assert grant.hidden_columns == ["Kreis"]
        assert pool_key(dst.root, "cellkey") == facts["key"]
        assert (dst.root / "secrets" / "cellkey.key").stat().st_mode & 0o077 == 0
        assert dashboards.get(dst, "leistungen").text == dashboards.get(src, "leistungen").text
        # The restored pool keeps working: new rows get fresh ids (PostgreSQL sequences).
        gate.accounts.add_user("neu", org="bmi", role="viewer", password=PASSWORD)
        gate.audit.log(local_admin("t"), "account", detail={"user": "neu"})
        assert gate.audit.verify().ok
        info = dst.ingest(
            shared_file("genesis/12411-0006.csv"), dataset="bevoelkerung", mode="replace"
        )
        assert info.version == facts["datasets"]["bevoelkerung"][-1] + 1
    finally:
        src.store.dispose()
        dst.store.dispose()


def roundtrip(tmp_path: Path, src_url: str | None, dst_url: str | None) -> dict[str, Any]:
    src, dst = tmp_path / "pool", tmp_path / "restored"
    facts = populate(src, src_url, tmp_path)
    file = tmp_path / "pool.dlbackup"
    env = {"DATENLABOR_DATABASE_URL": src_url} if src_url else {}
    r = cli("--pool", str(src), "backup", str(file), "--json", env=env)
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["audit"]["ok"] and made["tables"]["versions"] == 3
    assert file.stat().st_mode & 0o077 == 0  # as sensitive as the pool
    env = {"DATENLABOR_DATABASE_URL": dst_url} if dst_url else {}
    r = cli("--pool", str(dst), "restore-backup", str(file), "--json", env=env)
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert done["tables"] == made["tables"] and done["versions_checked"] == 3
    assert_same(src, src_url, dst, dst_url, facts)
    return made


def test_sqlite_to_sqlite(tmp_path: Path) -> None:
    made = roundtrip(tmp_path, None, None)
    with tarfile.open(made["path"]) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert names[-1] == "manifest.json" and manifest["alembic_revision"] == made["revision"]
    assert {f["path"] for f in manifest["files"]} == set(names[:-1])
    assert "pool/secrets/cellkey.key" in names and "pool/dashboards/leistungen/v1.yaml" in names
    # caches, transients and the SQLite file itself are not copied
    assert not [n for n in names if n.startswith(("pool/tmp/", "pool/locks/", "pool/metadata"))]


def test_postgresql_to_sqlite(tmp_path: Path, pg_url: str) -> None:
    roundtrip(tmp_path, pg_url, None)


def test_sqlite_to_postgresql(tmp_path: Path, pg_url: str) -> None:
    roundtrip(tmp_path, None, pg_url)


INGEST_LOOP = """
import sys, time
from pathlib import Path
import datenlabor
from datenlabor.demo import write_applications_csv
from datenlabor.errors import DatenlaborError
pool = datenlabor.open(sys.argv[1], user="loader")
work = Path(sys.argv[2])
for i in range(int(sys.argv[3])):
    f = write_applications_csv(work / f"a{i}.csv", months=2, seed=100 + i)
    pool.ingest(f, dataset="laufend", mode="append", allow_duplicate=True)
    print(i, flush=True)
    while i == 1 and not (work / "go").exists():
        time.sleep(0.01)  # holds after two appends until the first backup is taken
"""


def test_backup_while_another_process_ingests(tmp_path: Path) -> None:
    src = tmp_path / "pool"
    pool = datenlabor.open(src, user="t")
    pool.ingest(write_applications_csv(tmp_path / "first.csv", months=2), dataset="laufend")
    pool.store.dispose()
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST_LOOP, str(src), str(work), "6"],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")},
    )
    try:
        assert proc.stdout is not None
        done = 1 if proc.stdout.readline() else 0  # the writer is under way
        backups = []
        for i in range(2):
            file = tmp_path / f"b{i}.dlbackup"
            r = cli("--pool", str(src), "backup", str(file), "--json")
            assert r.exit_code == 0, r.output
            backups.append(file)
            # Without this hold a fast writer could finish before the first backup (seen on
            # a loaded machine); the second backup then runs while the writer appends.
            (work / "go").touch()
            in_backup = json.loads(r.stdout)["tables"]["versions"]
            while 1 + done <= in_backup and proc.stdout.readline():
                done += 1  # wait for a version the first backup cannot have
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0
    seen = set()
    for i, file in enumerate(backups):
        dst = tmp_path / f"restored{i}"
        r = cli("--pool", str(dst), "restore-backup", str(file), "--json")
        assert r.exit_code == 0, r.output
        restored = datenlabor.open(dst)
        try:
            versions = restored.dataset("laufend").versions()
            seen.add(len(versions))
            for v in versions:  # every recorded version reads exactly as recorded
                assert restored.dataset("laufend").read(version=v.version).num_rows == v.rows
            # nothing after the snapshot came along: the next ingest continues cleanly
            nxt = restored.ingest(
                tmp_path / "first.csv", dataset="laufend", mode="append", allow_duplicate=True
            )
            assert nxt.version == versions[-1].version + 1
            assert nxt.rows == versions[-1].rows + versions[0].rows
        finally:
            restored.store.dispose()
    assert len(seen) >= 2, f"the writer made no progress between backups: {seen}"


def _flip_byte(src: Path, dst: Path, member_prefix: str) -> str:
    """Copy the archive, changing one byte inside the first member under ``member_prefix``."""
    data = bytearray(src.read_bytes())
    with tarfile.open(src) as tar:
        m = next(m for m in tar.getmembers() if m.name.startswith(member_prefix))
    data[m.offset_data + m.size // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    return m.name


def test_corrupted_backup_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "pool"
    pool = datenlabor.open(src, user="t")
    pool.ingest(write_applications_csv(tmp_path / "a.csv", months=2), dataset="antraege")
    pool.store.dispose()
    good = tmp_path / "good.dlbackup"
    assert cli("--pool", str(src), "backup", str(good)).exit_code == 0
    for prefix in ("pool/tables/", "store/audit_log", "store/versions"):
        bad = tmp_path / "bad.dlbackup"
        name = _flip_byte(good, bad, prefix)
        dst = tmp_path / "target"
        r = cli("--pool", str(dst), "restore-backup", str(bad))
        assert r.exit_code == 2, r.output
        assert name in r.output and "damaged" in r.output
        assert not dst.exists()  # nothing was written
        assert not list(tmp_path.glob(".target.restore-*"))
    truncated = tmp_path / "short.dlbackup"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    r = cli("--pool", str(tmp_path / "target"), "restore-backup", str(truncated))
    assert r.exit_code == 2 and "short.dlbackup" in r.output
    r = cli("--pool", str(tmp_path / "target"), "restore-backup", "--check", str(good))
    assert r.exit_code == 0 and not (tmp_path / "target").exists()


def test_restore_into_non_empty_target_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "pool"
    pool = datenlabor.open(src, user="t")
    pool.ingest(write_applications_csv(tmp_path / "a.csv", months=2), dataset="antraege")
    pool.store.dispose()
    file = tmp_path / "b.dlbackup"
    assert cli("--pool", str(src), "backup", str(file)).exit_code == 0
    assert cli("--pool", str(src), "backup", str(file)).exit_code == 4  # no silent overwrite
    # a pool that was merely opened (empty folders, store without rows) counts as empty
    fresh = tmp_path / "fresh"
    datenlabor.open(fresh).store.dispose()
    assert cli("--pool", str(fresh), "restore-backup", str(file)).exit_code == 0
    r = cli("--pool", str(src), "restore-backup", str(file))
    assert r.exit_code == 4 and "not empty" in r.output and "--force" in r.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notiz.txt").write_text("bleibt")
    r = cli("--pool", str(other), "restore-backup", str(file))
    assert r.exit_code == 4 and "notiz.txt" in r.output
    assert (other / "notiz.txt").read_text() == "bleibt"
    r = cli("--pool", str(other), "restore-backup", "--force", str(file))
    assert r.exit_code == 0, r.output
    assert not (other / "notiz.txt").exists()
    restored = datenlabor.open(other)
    assert [d.slug for d in restored.datasets()] == ["antraege"]
    restored.store.dispose()


def test_restore_into_a_sqlite_file_outside_the_pool(tmp_path: Path) -> None:
    src = tmp_path / "pool"
    pool = datenlabor.open(src, user="t")
    pool.ingest(write_applications_csv(tmp_path / "a.csv", months=2), dataset="antraege")
    rows = pool.dataset("antraege").read(version=1)
    pool.store.dispose()
    file = tmp_path / "b.dlbackup"
    assert cli("--pool", str(src), "backup", str(file)).exit_code == 0
    db = tmp_path / "db" / "meta.sqlite"
    db.parent.mkdir()
    env = {"DATENLABOR_DATABASE_URL": f"sqlite:///{db}"}
    r = cli("--pool", str(tmp_path / "dst"), "restore-backup", str(file), env=env)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in db.parent.iterdir()) == ["meta.sqlite"]  # no WAL, no temp
    assert not (tmp_path / "dst" / "metadata.sqlite").exists()
    restored = datenlabor.open(tmp_path / "dst", database_url=f"sqlite:///{db}")
    assert restored.dataset("antraege").read(version=1).equals(rows)
    restored.store.dispose()
    # the store now has rows: a second restore into a new folder is refused, --force works
    r = cli("--pool", str(tmp_path / "dst2"), "restore-backup", str(file), env=env)
    assert r.exit_code == 4 and "meta.sqlite" in r.output
    r = cli("--pool", str(tmp_path / "dst2"), "restore-backup", "--force", str(file), env=env)
    assert r.exit_code == 0, r.output


KILLED_AT_THE_SWITCH = """
import os, signal, sys
from pathlib import Path
from datenlabor.backup import restore
from datenlabor.config import load_settings

def killed(new, target):
    os.kill(os.getpid(), signal.SIGKILL)  # the store is committed, the folder not yet moved

restore._swap = killed
settings = load_settings(pool=sys.argv[2], database_url=sys.argv[3])
restore.restore_backup(Path(sys.argv[1]), settings, force=sys.argv[4] == "force")
"""


def _killed_restore(file: Path, dst: Path, url: str, *, force: bool = False) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_THE_SWITCH, str(file), str(dst), url,
         "force" if force else "-"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DATENLABOR_")},
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]


@pytest.mark.parametrize("store", ["postgresql", "sqlite-file"])
def test_restore_killed_between_store_commit_and_folder_switch_finishes_on_rerun(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    if store == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        (tmp_path / "db").mkdir()
        url = f"sqlite:///{tmp_path / 'db' / 'meta.sqlite'}"
    src = tmp_path / "pool"
    pool = datenlabor.open(src, user="t")
    pool.ingest(write_applications_csv(tmp_path / "a.csv", months=2), dataset="antraege")
    rows = pool.dataset("antraege").read(version=1)
    pool.store.dispose()
    file = tmp_path / "b.dlbackup"
    assert cli("--pool", str(src), "backup", str(file)).exit_code == 0
    env = {"DATENLABOR_DATABASE_URL": url}
    dst = tmp_path / "dst"
    marker = tmp_path / ".dst.restore-pending.json"

    _killed_restore(file, dst, url)
    # half done: the store holds the backup, the pool folder is not in place
    assert marker.is_file() and not (dst / "tables").exists()
    assert json.loads(marker.read_text())["pool"] == str(dst)
    assert url not in marker.read_text()  # only a hash of the URL (it may hold a password)
    r = cli("--pool", str(dst), "restore-backup", str(file), env=env)  # the same, no --force
    assert r.exit_code == 0, r.output
    assert not marker.exists() and not list(tmp_path.glob(".dst.restore-*"))
    restored = datenlabor.open(dst, database_url=url)
    try:
        assert restored.dataset("antraege").read(version=1).equals(rows)
        assert Gate(restored).audit.verify().ok
        # a store that was used after the interruption is not taken for a half-done restore
        restored.ingest(tmp_path / "a.csv", dataset="neu")
    finally:
        restored.store.dispose()
    _killed_restore(file, tmp_path / "dst2", url, force=True)
    assert (tmp_path / ".dst2.restore-pending.json").is_file()
    used = datenlabor.open(tmp_path / "dst2", database_url=url)
    Gate(used).accounts.add_org("neu", "Eine neue Behörde")  # written after the kill
    used.store.dispose()
    r = cli("--pool", str(tmp_path / "dst2"), "restore-backup", str(file), env=env)
    assert r.exit_code == 4 and "not empty" in r.output and "--force" in r.output
    # another backup file is no rerun of the interrupted restore either
    other = tmp_path / "other.dlbackup"
    assert cli("--pool", str(src), "backup", str(other)).exit_code == 0
    _killed_restore(file, tmp_path / "dst3", url, force=True)
    r = cli("--pool", str(tmp_path / "dst3"), "restore-backup", str(other), env=env)
    assert r.exit_code == 4 and "not empty" in r.output
    r = cli("--pool", str(tmp_path / "dst3"), "restore-backup", str(file), env=env)
    assert r.exit_code == 0, r.output
