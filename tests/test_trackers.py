"""Trackers (TensorBoard, W&B offline, MLflow's local store) and evaluation transcripts."""

from __future__ import annotations

import importlib.util
import json
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from agentrl.config import ConfigError, load_config
from agentrl.metrics import MetricsLogger, read_metrics, scalar_metrics
from agentrl.trackers import Tracker, check_trackers, close_all, flatten_config, mlflow_key
from agentrl.trainer import Trainer


def _run(overrides: list[str]) -> dict:
    return Trainer(load_config(overrides), console=False).run()


def _two_iterations(tiny_overrides: list[str], *extra: str) -> list[str]:
    return [*tiny_overrides, "env=guess_the_number", "iterations=2", "eval.every=1",
            "logging.transcripts=2", *extra]


def _expected_scalars(run_dir: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl's numbers per iteration: what every tracker must have logged."""
    return {r["iteration"]: scalar_metrics(r) for r in read_metrics(run_dir / "metrics.jsonl")}


class Recorder(Tracker):
    """Keeps every call, to check what MetricsLogger sends."""

    name = "recorder"

    def __init__(self, fail_close: bool = False):
        self.calls: list[tuple] = []
        self.fail_close = fail_close

    def log_config(self, config: Mapping[str, object]) -> None:
        self.calls.append(("config", dict(config)))

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.calls.append(("scalars", step, dict(scalars)))

    def log_text(self, step: int, tag: str, text: str) -> None:
        self.calls.append(("text", step, tag, text))

    def close(self, failed: bool = False) -> None:
        self.calls.append(("close", failed))
        if self.fail_close:
            raise OSError("disk full")


def test_metrics_logger_sends_the_same_scalars_to_every_tracker(tmp_path):
    a, b = Recorder(), Recorder()
    log = MetricsLogger(tmp_path, [a, b])
    log.log(3, {"train/return": 1.5, "train/success": 1, "eval/return": float("nan"), "note": "x"})
    log.log_text(3, "transcripts", "# hi")
    log.close()
    log.close()  # once only
    expected = [("scalars", 3, {"train/return": 1.5, "train/success": 1.0}),
                ("text", 3, "transcripts", "# hi"), ("close", False)]
    assert a.calls == b.calls == expected  # NaN (logged as null), text and the step are not scalars
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"iteration": 3, "train/return": 1.5, "train/success": 1, "eval/return": None, "note": "x"}
    ]


def test_close_all_closes_every_tracker_even_when_one_fails(capsys):
    bad, good = Recorder(fail_close=True), Recorder()
    close_all([bad, good], failed=True)  # a failed run: reported, not raised over the real error
    assert good.calls == [("close", True)] and "closing the recorder tracker failed" in capsys.readouterr().err
    bad, good = Recorder(fail_close=True), Recorder()
    with pytest.raises(OSError, match="disk full"):
        close_all([bad, good])
    assert good.calls == [("close", False)]


def test_flattened_config_and_mlflow_keys():
    flat = flatten_config({"env": {"id": "a/B-v0", "kwargs": {"high": 16}, "stop": ["\n"]},
                           "run_dir": None, "words": "x" * 600, "empty": {}})
    assert flat == {"env.id": "a/B-v0", "env.kwargs.high": "16", "env.stop": '["\\n"]',
                    "run_dir": "null", "words": "x" * 497 + "...", "empty": "{}"}
    assert mlflow_key("curriculum/p[task=3]") == "curriculum/p_task_3_"
    assert mlflow_key("train/return") == "train/return"


@pytest.mark.parametrize("tracker,extra", [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_tracker_package_fails_at_construction_naming_the_extra(
    tiny_overrides, monkeypatch, tracker, extra
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == tracker else real(name, *a)
    )
    cfg = load_config([*tiny_overrides, f"logging.{tracker}=true"])
    with pytest.raises(ConfigError, match=rf'logging.{tracker}=true needs the {tracker} .*pip install -e "\.\[{extra}\]"'):
        Trainer(cfg, console=False)
    check_trackers(load_config(tiny_overrides).logging)  # off: nothing is needed
    assert not (Path(cfg.run_dir) / "metrics.jsonl").exists()  # nothing started


def test_bad_wandb_mode_names_the_choices(tiny_overrides):
    with pytest.raises(ConfigError, match="logging.wandb_mode='cloud'.*offline, online"):
        load_config([*tiny_overrides, "logging.wandb_mode=cloud"])


def test_transcripts_as_markdown_jsonl_and_tensorboard_text(tiny_overrides, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    _run(_two_iterations(tiny_overrides, "logging.tensorboard=true"))
    folder = run / "transcripts"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"iter_00000{i}.{ext}" for i in range(3) for ext in ("jsonl", "md")
    ]
    records = [json.loads(line) for line in (folder / "iter_000002.jsonl").read_text().splitlines()]
    assert [r["mode"] for r in records] == ["greedy", "greedy", "sampled", "sampled"]
    for r in records:
        assert r["iteration"] == 2 and isinstance(r["seed"], int) and isinstance(r["task"], dict)
        roles = [m["role"] for m in r["messages"]]
        assert roles[0] == "user" and roles[1::2] == ["assistant"] * r["turns"] and r["turns"] >= 1
        assert "Guess the number between 1 and 16." in r["messages"][0]["content"]
        assert r["rewards"] == [m["reward"] for m in r["messages"][1::2]]
        assert r["return"] == pytest.approx(sum(r["rewards"])) and isinstance(r["success"], bool)
    markdown = (folder / "iter_000002.md").read_text()
    assert markdown.count("## greedy, seed") == 2 and markdown.count("## sampled, seed") == 2

    events = EventAccumulator(str(run / "tb"), size_guidance={"tensors": 0}).Reload()
    texts = events.Tensors("transcripts/text_summary")
    assert [e.step for e in texts] == [0, 1, 2]
    assert texts[-1].tensor_proto.string_val[0].decode() == markdown
    assert "config/text_summary" in events.Tags()["tensors"]
    # the scalars are metrics.jsonl's
    expected = _expected_scalars(run)
    for key in ("train/return", "eval/success", "perf/iteration_s"):
        got = {e.step: e.value for e in events.Scalars(key)}
        assert got == pytest.approx({i: row[key] for i, row in expected.items() if key in row})


def _wandb_records(path: Path) -> Iterator:
    """The records of a W&B ``.wandb`` file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def _finished_wandb_records(path: Path, timeout_s: float = 60.0) -> list:
    """The records of an offline run's file once its exit record is there: ``run.finish()``
    returns before W&B's service process has written every record (seen on a loaded
    machine), so read until the exit record shows (a record cut mid-write reads again)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            records = list(_wandb_records(path))
        except Exception:  # the file's last record is being written
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def test_wandb_offline_run_logs_metrics_config_and_transcripts(tiny_overrides, tmp_path):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    _run(_two_iterations(tiny_overrides, "logging.wandb=true", "logging.wandb_project=agentrl-test"))
    (offline,) = (run / "wandb").glob("offline-run-*")
    run_id = json.loads((run / "trackers.json").read_text())["wandb"]
    (log,) = offline.glob(f"run-{run_id}.wandb")
    records = _finished_wandb_records(log)
    history: dict[int, dict] = {}
    config: dict[str, object] = {}
    exit_codes = []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            history[items["_step"]] = items
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "exit":
            exit_codes.append(record.exit.exit_code)
    expected = _expected_scalars(run)
    assert sorted(history) == [0, 1, 2]
    for step, row in expected.items():
        logged = {k: v for k, v in history[step].items() if not k.startswith(("_", "transcripts"))}
        assert logged == pytest.approx(row)  # the same keys and values as metrics.jsonl
        assert history[step]["transcripts/_type"] == "html-file"
    assert config["iterations"] == 2 and config["env"]["id"] == "agentrl/GuessTheNumber-v0"
    assert exit_codes == [0]


def test_mlflow_run_metrics_equal_metrics_jsonl(tiny_overrides, tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    _run(_two_iterations(tiny_overrides, "logging.mlflow=true", "logging.mlflow_experiment=agentrl-test"))
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlruns' / 'mlflow.db'}")
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert client.get_experiment(logged.info.experiment_id).name == "agentrl-test"
    expected = _expected_scalars(run)
    keys = set().union(*expected.values())
    assert set(logged.data.metrics) == keys
    for key in keys:
        got = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        assert got == pytest.approx({i: row[key] for i, row in expected.items() if key in row}), key
    params = logged.data.params
    assert params["env.id"] == "agentrl/GuessTheNumber-v0" and params["iterations"] == "2"
    assert params["logging.mlflow"] == "true" and params["model.num_layers"] == "1"
    artifacts = {a.path for a in client.list_artifacts(run_id, "transcripts")}
    assert artifacts == {f"transcripts/iter_00000{i}.md" for i in range(3)}
    assert (run / "mlruns" / "artifacts").is_dir()  # artifacts stay inside the run dir


def test_mlflow_run_of_a_failed_run_is_marked_failed_and_a_resume_continues_it(
    tiny_overrides, tmp_path
):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    base = [*tiny_overrides, "env=guess_the_number", "eval.every=2", "checkpoint.every=1",
            "logging.mlflow=true"]

    def boom(trainer, iteration, row):
        if iteration == 2:
            raise RuntimeError("a callback failed")

    with pytest.raises(RuntimeError, match="a callback failed"):
        Trainer(load_config([*base, "iterations=3"]), console=False, callbacks=[boom]).run()
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlruns' / 'mlflow.db'}")
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]
    assert client.get_run(run_id).info.status == "FAILED"
    _run([*base, "iterations=3", "resume=latest"])  # continues from step 1's checkpoint
    assert json.loads((run / "trackers.json").read_text())["mlflow"] == run_id
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "train/return")
    assert sorted({m.step for m in history}) == [1, 2, 3]
    assert resumed.data.params["iterations"] == "3"
