"""Ray Data batch inference (`gru_sentiment.ray`): the Predictor on its own, `predict_files` and the `score`
command on a local Ray of 2 CPUs, and a worker killed mid-job: every input row is still written exactly once.

Skipped without ray (the optional extra `ray`); the names the tests use are imported before the skip, so that a
renamed one fails collection where ray is missing too."""

import json
import math
import os
import signal
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gru_sentiment
from gru_sentiment.cli import app
from gru_sentiment.errors import DataError, UserError
from gru_sentiment.ray import EMPTY_TEXT_NOTE, Predictor, input_files, predict_files, worker_cpus
from tests.corpus import reviews
from tests.ray_workers import KilledOnce

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 300  # a safety net only: every wait below ends on an event long before


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module; its workers import `tests.ray_workers` from this checkout."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={
            "env_vars": {"PYTHONPATH": path},
            "worker_process_setup_hook": "gru_sentiment.ray.settle_fsspec_http",
        },
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clf():
    return gru_sentiment.load(device="cpu")


def frame(n, start=0, seed=0):
    texts, labels = reviews(n, seed=seed)
    return pd.DataFrame({"id": np.arange(start, start + n), "text": texts, "source": "tests", "stars": labels})


def write_parts(folder, frames, fmt="parquet"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(frames):
        path = folder / f"part-{i}.{fmt}"
        if fmt == "parquet":
            part.to_parquet(path)
        elif fmt == "csv":
            part.to_csv(path, index=False)
        else:
            part.to_json(path, orient="records", lines=True)
    return folder


def expected(clf, texts):
    return {t: p for t, p in zip(texts, clf.predict(list(texts)))}


def check_scored(out, inputs, clf):
    """Every input id exactly once, with the label and probabilities `predict` gives its text."""
    assert sorted(out["id"]) == sorted(inputs["id"]) and out["id"].is_unique
    merged = inputs.merge(out, on="id")
    want = expected(clf, merged["text"])
    assert list(merged["label"]) == [want[t].label for t in merged["text"]]
    for name in clf.labels:
        got, exp = merged[f"p_{name}"].to_numpy(), np.array([want[t].probabilities[name] for t in merged["text"]])
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)


def test_predictor_gives_predicts_labels_and_keeps_the_other_columns(clf):
    data = frame(40)
    predictor = Predictor(device="cpu", batch_size=7)
    out = predictor({name: data[name].to_numpy() for name in data.columns})
    assert list(out) == ["id", "source", "stars", "label", *(f"p_{n}" for n in clf.labels), "truncated", "notes"]
    assert list(out["id"]) == list(data["id"]) and list(out["source"]) == ["tests"] * 40
    preds = clf.predict(list(data["text"]))
    assert list(out["label"]) == [p.label for p in preds]
    for name in clf.labels:
        np.testing.assert_allclose(out[f"p_{name}"], [p.probabilities[name] for p in preds], rtol=1e-5, atol=1e-6)
    assert list(out["truncated"]) == [p.truncated for p in preds]
    assert list(out["notes"]) == ["; ".join(p.notes) for p in preds]


def test_predictor_keeps_rows_without_text_and_renames_clashing_columns(clf):
    texts = np.array(["A wonderful, moving film.", "", "   ", None, "Dull and far too long."], dtype=object)
    batch = {"id": np.arange(5), "review": texts, "label": np.array([1, 0, 0, 1, 0])}
    out = Predictor(device="cpu", text_column="review", keep_text=True)(batch)
    assert list(out["input_label"]) == [1, 0, 0, 1, 0] and list(out["review"]) == list(texts)
    assert list(out["label"]) == [clf.predict(str(texts[0])).label, "", "", "", clf.predict(str(texts[4])).label]
    assert [math.isnan(p) for p in out[f"p_{clf.labels[0]}"]] == [False, True, True, True, False]
    assert list(out["notes"][1:4]) == [EMPTY_TEXT_NOTE] * 3 and out["notes"][0] == ""
    assert not out["truncated"].any()


def test_predictor_without_its_text_column_names_the_columns_there():
    with pytest.raises(DataError, match=r"no text column 'text' in the batch \(columns: id, review\)"):
        Predictor(device="cpu")({"id": np.arange(2), "review": np.array(["good", "bad"], dtype=object)})


def test_input_files_take_folders_globs_and_refuse_mixed_kinds(tmp_path):
    write_parts(tmp_path / "a", [frame(3), frame(3, 3)])
    write_parts(tmp_path / "b", [frame(3)], "csv")
    files, kind = input_files(tmp_path / "a")
    assert kind == "parquet" and [f.name for f in files] == ["part-0.parquet", "part-1.parquet"]
    assert input_files(str(tmp_path / "*" / "*.csv")) == ([(tmp_path / "b" / "part-0.csv").resolve()], "csv")
    with pytest.raises(DataError, match="mix csv and parquet"):
        input_files([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DataError, match="no files match"):
        input_files(str(tmp_path / "*.jsonl"))


def test_workers_leave_a_cpu_for_the_read_and_write_tasks():
    assert worker_cpus(16, 4, 2) == 2  # room to spare: each worker reserves its threads
    assert worker_cpus(2, 2, 1) == 0.5  # two workers on two CPUs: they share one, the other reads and writes
    assert worker_cpus(2, 1, 1) == 1


def test_predict_files_scores_a_folder_every_row_once(local_ray, clf, tmp_path):
    parts = [frame(120, 0, seed=1), frame(90, 120, seed=2), frame(70, 210, seed=3)]
    folder = write_parts(tmp_path / "in", parts)
    summary = predict_files(folder, tmp_path / "out", workers=2, rows_per_call=32)
    out = pd.read_parquet(tmp_path / "out")
    assert (summary.rows, summary.input_files) == (280, 3) and summary.output_files >= 1
    assert list(out.columns) == ["id", "source", "stars", "label", "p_neg", "p_pos", "truncated", "notes"]
    check_scored(out, pd.concat(parts), clf)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary folder left


def test_predict_files_reads_csv_and_writes_json_lines(local_ray, clf, tmp_path):
    parts = [frame(50, 0, seed=4), frame(50, 50, seed=5)]
    parts[1].loc[parts[1]["id"] == 52, "text"] = ""  # kept, with an empty label
    folder = write_parts(tmp_path / "in", parts, "csv")
    summary = predict_files(str(folder / "*.csv"), tmp_path / "out", workers=1, output_format="jsonl")
    rows = [json.loads(line) for f in sorted((tmp_path / "out").iterdir()) for line in f.read_text().splitlines()]
    assert summary.rows == len(rows) == 100
    blank = [r for r in rows if r["id"] == 52]
    assert blank[0]["label"] == "" and blank[0]["notes"] == EMPTY_TEXT_NOTE
    check_scored(pd.DataFrame([r for r in rows if r["id"] != 52]), pd.concat(parts).query("id != 52"), clf)


def test_predict_files_refuses_an_output_with_files_a_missing_text_column_and_a_bad_file(tmp_path):
    folder = write_parts(tmp_path / "in", [frame(5)])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds files"):
        predict_files(folder, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    with pytest.raises(DataError, match=r"part-0.parquet: no text column 'body' \(columns: id, text, source"):
        predict_files(folder, tmp_path / "new", text_column="body")
    (tmp_path / "bad.parquet").write_text("not a table")
    with pytest.raises(DataError, match=r"cannot read .*bad.parquet as parquet"):
        predict_files(tmp_path / "bad.parquet", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_score_command_end_to_end(local_ray, clf, tmp_path):
    parts = [frame(30, 0, seed=6), frame(30, 30, seed=7)]
    folder = write_parts(tmp_path / "in", parts, "jsonl")
    result = CliRunner().invoke(app, ["score", str(folder), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "scored 60 rows of 2 files" in result.output
    check_scored(pd.read_parquet(tmp_path / "out"), pd.concat(parts), clf)
    again = CliRunner().invoke(app, ["score", str(folder), "-o", str(tmp_path / "out")])
    assert again.exit_code == 2 and "already holds files" in again.output and "Traceback" not in again.output


def test_a_worker_killed_mid_job_loses_and_doubles_no_row(local_ray, clf, tmp_path):
    parts = [frame(150, 0, seed=8), frame(150, 150, seed=9), frame(100, 300, seed=10)]
    folder = write_parts(tmp_path / "in", parts)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(DEADLINE_S)
        failures = []

        def run():
            try:
                predict_files(
                    folder,
                    tmp_path / "out",
                    workers=2,
                    rows_per_call=25,
                    predictor=KilledOnce,
                    predictor_kwargs={"scratch": str(scratch), "port": server.getsockname()[1]},
                )
            except BaseException as exc:  # noqa: BLE001  (reported by the test thread)
                failures.append(exc)

        job = threading.Thread(target=run, daemon=True)
        job.start()
        conn, _ = server.accept()  # the first worker to get a batch: it holds it until killed
        with conn:
            pid = int(conn.makefile().readline())
    os.kill(pid, signal.SIGKILL)
    job.join(DEADLINE_S)
    assert not job.is_alive(), "the job did not finish after a worker was killed"
    assert not failures, failures
    out = pd.read_parquet(tmp_path / "out")
    check_scored(out, pd.concat(parts), clf)  # 400 ids, each exactly once
    assert pid not in set(out["pid"])  # the killed worker's batch was scored again, by another
