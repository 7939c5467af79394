"""Run folders shared by the labs: ownership in public mode, listings that survive broken folders, the disk quota, downloads."""

import io
import json
import os
import time
import zipfile

import pytest

from engine.core import runs
from engine.core.jobs import JobBoard
from engine.gpt import runs as gpt_runs
from engine.ddpm import runs as ddpm_runs


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("DLLAB_PUBLIC", raising=False)
    return tmp_path / "runs"


def gpt_run(owner: str, label: str = "tiny", best: float = 1.9) -> "os.PathLike":
    folder = gpt_runs.new_run_folder(label, owner=owner)
    runs.write_json(folder / runs.RUN_FILE, {**runs.read_json(folder / runs.RUN_FILE), "state": "done", "best_val_loss": best, "data": {"name": "rhymes"}})
    (folder / runs.HISTORY_FILE).write_text('{"step": 0, "loss": 3.0}\n{"step": 10, "loss": 2.0, "val_loss": 2.1}\n')
    return folder


def test_a_new_run_folder_names_its_owner(runs_dir):
    folder = gpt_runs.new_run_folder("cpu", owner="visitor-a")
    assert folder.parent == runs_dir / "gpt" and folder.name.endswith("-cpu")
    assert runs.owner_of(folder) == "visitor-a"


def test_on_a_private_machine_everyone_sees_every_run(runs_dir):
    gpt_run("alice"), gpt_run("bob")
    assert len(gpt_runs.list_runs(visitor="alice")) == 2
    assert len(gpt_runs.list_runs(visitor=None)) == 2


@pytest.mark.parametrize("variable", ["SPACE_ID", "DLLAB_PUBLIC"])
def test_in_public_mode_a_visitor_sees_only_their_own_runs(runs_dir, monkeypatch, variable):
    monkeypatch.setenv(variable, "1" if variable == "DLLAB_PUBLIC" else "teacher/deep-learning-lab")
    alices, bobs = gpt_run("alice"), gpt_run("bob")
    assert [run.folder for run in gpt_runs.list_runs(visitor="alice")] == [alices]
    assert [run.folder for run in gpt_runs.list_runs(visitor="bob")] == [bobs]
    assert gpt_runs.list_runs(visitor=None) == [] and gpt_runs.list_runs(visitor="") == []


def test_history_lines_that_are_not_metric_rows_are_skipped(runs_dir):
    folder = gpt_run("alice")
    (folder / runs.HISTORY_FILE).write_text(
        '[1, 2]\n"text"\n{"step": "3"}\n{"step": 1.5}\n{"step": 2, "loss": "high", "val_loss": NaN}\n{"step": 4, "loss": 1.5}\n{"ste'
    )
    assert runs.read_history(folder) == [{"step": 2}, {"step": 4, "loss": 1.5}]


BROKEN_FILES = {
    "best_val_loss a string": {runs.RUN_FILE: {"state": "done", "best_val_loss": "low", "data": {"name": "x"}}},
    "data a string": {runs.RUN_FILE: {"state": "done", "data": "tiny Shakespeare"}},
    "config a list": {runs.RUN_FILE: {"state": "done", "config": [1, 2], "data": {"name": "x"}}},
    "state a number, pid huge": {runs.RUN_FILE: {"state": 3, "pid": 10**30, "data": {"name": "x"}}},
    "run.json a list": {runs.RUN_FILE: [1, 2, 3]},
    "card tensors a string": {"model.json": {"format_version": 1, "kind": "gpt", "tensors": "all of them", "metrics": "many"}},
    "card a number": {"model.json": 12},
    "card metrics strings": {"model.json": {"format_version": 1, "kind": "gpt", "metrics": {"iter": "ten", "best_val_loss": "x"}, "params": "p"}},
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_a_broken_run_folder_never_raises_into_a_listing(runs_dir, case):
    good = gpt_run("alice")
    broken = runs_dir / "gpt" / "broken"
    broken.mkdir()
    for name, content in BROKEN_FILES[case].items():
        (broken / name).write_text(json.dumps(content))
    listed = gpt_runs.list_runs()
    assert good in [run.folder for run in listed]
    for run in listed:  # what pages format must have the types they format
        assert run.best_val_loss is None or isinstance(run.best_val_loss, float)
        assert run.best_iter is None or isinstance(run.best_iter, int)
        assert isinstance(run.data_name, str) and isinstance(run.state, str)
        assert not run.has_checkpoint or run.folder == good


def test_a_folder_whose_reading_fails_is_skipped_with_a_note_naming_it(runs_dir):
    gpt_run("alice")
    (runs_dir / "gpt" / "odd").mkdir()

    def read_one(folder):
        if folder.name == "odd":
            raise ValueError("cannot parse")
        return folder

    listed = runs.list_runs_of(runs_dir / "gpt", read_one)
    assert len(listed) == 1
    assert len(listed.skipped) == 1 and "odd" in listed.skipped[0] and "cannot parse" in listed.skipped[0]


def test_special_and_huge_files_in_a_run_folder_are_not_read(runs_dir):
    folder = gpt_run("alice")
    (folder / runs.RUN_FILE).unlink()
    os.mkfifo(folder / runs.RUN_FILE)  # reading a FIFO would block forever
    with open(folder / runs.HISTORY_FILE, "wb") as file:
        file.truncate(runs.MAX_HISTORY_BYTES + 1)  # sparse: costs no disk
    started = time.monotonic()
    assert runs.read_json(folder / runs.RUN_FILE) == {}
    assert runs.read_history(folder) == []
    assert time.monotonic() - started < 2


def test_ddpm_runs_are_listed_from_their_last_card_and_broken_ones_noted(runs_dir):
    folder = ddpm_runs.new_run_folder("tiny", owner="alice")
    (folder / "last.json").write_text("{not json")
    listed = ddpm_runs.list_runs()
    assert listed == [] and len(listed.skipped) == 1 and folder.name in listed.skipped[0]


def sized_run(owner: str, kilobytes: int, age_seconds: float):
    folder = gpt_runs.new_run_folder(f"{owner}-{kilobytes}", owner=owner)
    (folder / "model.safetensors").write_bytes(b"\0" * kilobytes * 1024)
    then = time.time() - age_seconds
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (then, then))
    return folder


def test_the_quota_removes_the_oldest_runs_of_visitors_long_gone_first(runs_dir):
    gone_old = sized_run("gone", 400, age_seconds=3 * 3600)
    gone_newer = sized_run("gone", 400, age_seconds=2 * 3600)
    present_old = sized_run("present", 400, age_seconds=4 * 3600)  # older, but its visitor has a job now
    removed = runs.enforce_quota(900 * 1024, active_owners={"present"}, busy_folders=set())
    assert removed == [gone_old]
    removed = runs.enforce_quota(500 * 1024, active_owners={"present"}, busy_folders=set())
    assert removed == [gone_newer] and present_old.exists()


def test_the_quota_never_removes_a_folder_a_job_is_writing(runs_dir):
    busy = sized_run("gone", 400, age_seconds=5 * 3600)
    other = sized_run("gone", 400, age_seconds=4 * 3600)
    assert runs.enforce_quota(100 * 1024, active_owners=set(), busy_folders={busy}) == [other]
    assert busy.exists()


def test_make_room_applies_only_in_public_mode(runs_dir, monkeypatch):
    sized_run("gone", 400, age_seconds=3 * 3600)
    monkeypatch.setenv("DLLAB_RUNS_QUOTA_MB", "0.1")
    assert runs.make_room(JobBoard(max_running=1)) == []
    monkeypatch.setenv("DLLAB_PUBLIC", "1")
    assert len(runs.make_room(JobBoard(max_running=1))) == 1


def test_a_run_downloads_as_a_zip_of_its_files(runs_dir):
    folder = gpt_run("alice")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / ".model.safetensors.123.tmp").write_bytes(b"half written")
    (folder / "model.next.json").write_bytes(b"{}")
    archive = zipfile.ZipFile(io.BytesIO(runs.export_zip(folder)))
    assert sorted(archive.namelist()) == sorted(f"{folder.name}/{name}" for name in ("history.jsonl", "model.safetensors", "run.json"))
    assert archive.read(f"{folder.name}/model.safetensors") == b"weights"
