"""benchmarks/sample_efficiency.py's fair comparison: tuning grids, the seed checks, the tuned
file's round trip into the report runs, the report's statistics on hand-computed curves, the
cost estimate, and one tiny run of the whole pipeline (tuning, then the report).

The original median tables and the variant mechanism are tested in
tests/test_benchmark_smoke.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import sample_efficiency as se  # noqa: E402  (needs ROOT on sys.path)
from benchmarks.fair import cost, grid, plan, report, setup, tuned  # noqa: E402
from benchmarks.fair.runs import RunTimes  # noqa: E402

GRID_FILE = ROOT / "benchmarks" / "tuning_grid.json"
TQ = setup.ENVS["twenty_questions"].overrides


def curve(*points: tuple[int, float], key: str = "eval_sample/return") -> list[dict]:
    return [{"episodes_total": t, key: v} for t, v in points]


# ---------------------------------------------------------------- algorithms and envs


def test_every_algorithm_has_a_config_and_a_valid_batch():
    configs = {p.stem for p in (ROOT / "configs" / "algorithm").glob("*.yaml")}
    for a in setup.ALGORITHM_SETTINGS:
        assert a.config in configs, a
    assert se.ALGORITHMS[:4] == ("archer", "ppo", "filtered_bc", "chai")  # the original order
    assert set(se.ALGORITHMS) == {
        "archer",
        "ppo",
        "filtered_bc",
        "chai",
        "ppo_critic_free",
        "grpo",
        "rloo",
    }
    assert setup.DEFAULT_PER_ITER["grpo"] % 8 == 0 and setup.DEFAULT_PER_ITER["rloo"] % 8 == 0
    for e in setup.ENV_SETTINGS:  # the starting policy is pinned in the env's settings
        assert {o.partition("=")[0] for o in e.overrides} >= {
            "warm_start.policy", "warm_start.epsilon", "warm_start.episodes",
            "warm_start.epochs", "warm_start.lr",
        }  # fmt: skip
    assert setup.TUNING_EVAL_SEED > setup.FINAL_EVAL_SEED > setup.REPORT_EVAL_SEED


# ---------------------------------------------------------------- grids and seed checks


def test_the_shipped_grid_gives_every_algorithm_the_same_budget():
    grids = grid.load_grid(GRID_FILE, se.ALGORITHMS)
    assert set(grids) == set(se.ALGORITHMS)
    assert {len(g.points()) for g in grids.values()} == {6}
    archer = grids["archer"]
    assert archer.points()[0] == {"algorithm.actor_lr": 3e-05, "algorithm.critic_lr": 0.0003}
    assert archer.points()[1] == {"algorithm.actor_lr": 3e-05, "algorithm.critic_lr": 0.001}
    assert archer.overrides(archer.points()[5]) == [
        "algorithm.critic_model.name=policy",
        "algorithm.actor_lr=0.0003",
        "algorithm.critic_lr=0.001",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"algorithms": {"archer": {"grid": {"algorithm.actor_lr": [1, 2]}},
                            "ppo": {"grid": {"algorithm.lr": [1, 2, 3]}}}},
            "same number of configurations (the same tuning budget); got archer 2, ppo 3",
        ),
        ({"algorithms": {"nope": {"grid": {"algorithm.lr": [1]}}}}, "unknown algorithm 'nope': choose from archer"),
        ({"algorithms": {"ppo": {"grid": {"algorithm.lr": []}}}}, "non-empty list"),
        ({"algorithms": {"ppo": {"grid": {"lr": [1]}}}}, "'lr' is not a config key"),
        (
            {"algorithms": {"ppo": {"fixed": ["algorithm.lr=1"], "grid": {"algorithm.lr": [2]}}}},
            "'algorithm.lr' is both fixed and tuned",
        ),
        ({"algorithms": {"ppo": {"grid": {"algorithm.lr": [1, 1]}}}}, "repeats a value"),
        ({"grids": {}}, "an object with 'algorithms'"),
    ],
)  # fmt: skip
def test_bad_grids_are_refused_with_the_reason(data, message):
    with pytest.raises(grid.GridError) as e:
        grid.parse_grid(data, se.ALGORITHMS)
    assert message in str(e.value)


def test_tuning_seeds_must_not_be_report_seeds():
    grid.check_seeds_disjoint([100, 101], [0, 1, 2, 3, 4])
    with pytest.raises(grid.SeedOverlapError) as e:
        grid.check_seeds_disjoint([3, 100], [0, 1, 2, 3, 4])
    assert "tuning seeds [3, 100] and report seeds [0, 1, 2, 3, 4] share [3]" in str(e.value)


def test_tune_mode_refuses_overlap_before_any_run(capsys, tmp_path):
    argv = ["--tune", str(GRID_FILE), "--tune-seeds", "4", "7", "--root", str(tmp_path)]
    with pytest.raises(SystemExit):
        se.main(argv)  # report seeds default to 0..4 in tuning mode
    assert (
        "tuning seeds [4, 7] and report seeds [0, 1, 2, 3, 4] share [4]" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        se.main([*argv, "--seeds", "7", "8"])
    assert "report seeds [7, 8] share [7]" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_tuning_plays_other_words_than_the_report(tmp_path):
    """TwentyQuestions' tuning runs play 10 classic words disjoint from the report's subset,
    covering the same categories, in a game of the same shape; the report plays the subset."""
    from agentrl.config import load_config
    from agentrl.envs.twenty_questions import CLASSIC, SUBSET, WORDS, valid_questions

    words = setup.TUNING_WORDS
    assert len(words) == len(set(words)) == len(SUBSET) and set(words) <= set(CLASSIC)
    assert not set(words) & set(SUBSET)
    categories = [set().union(*(WORDS[w][0] for w in ws)) for ws in (words, SUBSET)]
    assert categories[0] == categories[1]
    assert len(valid_questions(words)) == len(valid_questions(SUBSET))
    opts = plan.Options(
        "twenty_questions", ("ppo",), {"ppo": "ppo"}, {"ppo": 32}, {"ppo": ()}, (), 64, 32, tmp_path
    )
    g = grid.parse_grid({"algorithms": {"ppo": {"grid": {"algorithm.lr": [0.001]}}}}, se.ALGORITHMS)
    (tune_run,) = plan.tuning_runs(opts, g, [100])
    (report_run,) = plan.report_runs(opts, [0], {})
    tune_cfg, report_cfg = load_config(tune_run.overrides()), load_config(report_run.overrides())
    assert list(tune_cfg.env.kwargs["word_list"]) == list(words)
    assert "word_list" not in report_cfg.env.kwargs
    from agentrl.rollouts.worker import make_env

    env = make_env(tune_cfg.env.id, dict(tune_cfg.env.kwargs))
    env.reset(seed=0)
    assert env.unwrapped.words == words
    # the tuned file records the tuning task set
    choice = tuned.select(g["ppo"], {0: {100: curve((0, -13), (32, -12))}})
    path = tmp_path / "tuned.json"
    tuned.write_tuned(path, "twenty_questions", {"ppo": choice}, [100], [], {"ppo": {}}, setup.ENVS["twenty_questions"].tuning)
    assert json.loads(path.read_text())["envs"]["twenty_questions"]["tuning_tasks"] == list(
        setup.ENVS["twenty_questions"].tuning
    )


def test_eval_seed_ranges_must_not_meet():
    tune_eval = [range(3_000_000, 3_000_064)]
    grid.check_eval_disjoint(tune_eval, [range(1_000_000, 1_000_256), range(2_000_000, 2_000_256)])
    with pytest.raises(grid.SeedOverlapError) as e:
        grid.check_eval_disjoint(tune_eval, [range(2_999_990, 3_000_000 + 1)])
    assert "tuning eval seeds 3000000..3000063 overlap report eval seeds 2999990..3000000" in str(
        e.value
    )


# ---------------------------------------------------------------- selection and the tuned file


def small_grid() -> grid.AlgorithmGrid:
    return grid.parse_grid(
        {"algorithms": {"archer": {"fixed": ["algorithm.critic_model.name=policy"],
                                   "grid": {"algorithm.actor_lr": [0.0001, 0.0003]}}}},
        se.ALGORITHMS,
    )["archer"]  # fmt: skip


def test_selection_takes_the_best_mean_of_the_last_two_points():
    g = small_grid()
    runs = {
        0: {100: curve((0, -13), (8, -12), (16, -11)), 101: curve((0, -13), (8, -13), (16, -12))},
        1: {100: curve((0, -13), (8, -11), (16, -11)), 101: curve((0, -13), (8, -12), (16, -12))},
    }
    choice = tuned.select(g, runs)
    # c0: seeds (-12-11)/2 = -11.5 and (-13-12)/2 = -12.5 -> -12.0; c1: -11 and -12 -> -11.5
    assert [s["score"] for s in choice.scores] == [-12.0, -11.5]
    assert choice.index == 1 and choice.score == -11.5
    assert choice.overrides == ("algorithm.critic_model.name=policy", "algorithm.actor_lr=0.0003")
    tie = {0: {100: curve((0, -13), (8, -11))}, 1: {100: curve((0, -13), (8, -11))}}
    # one point after the start: the last two points are the start and it (mean -12)
    assert tuned.select(g, tie).index == 0 and tuned.select(g, tie).score == -12.0


def opts(root: Path, labels=("archer",), algo_extra=None, extra=()) -> plan.Options:
    base = {a: a for a in se.ALGORITHMS}
    return plan.Options(
        "twenty_questions", tuple(labels), base, dict(setup.DEFAULT_PER_ITER),
        {a: tuple((algo_extra or {}).get(a, ())) for a in base}, tuple(extra), 32, 16, root,
    )  # fmt: skip


def write(path: Path, env: str, label: str, choice: tuned.Choice, seeds, eval_ranges, per_iter=8):
    budget = {"trajectories": 32, "eval_trajectories": 16, "per_iter": per_iter}
    tuned.write_tuned(path, env, {label: choice}, seeds, eval_ranges, {label: budget})


def test_tuned_values_round_trip_into_the_report_runs(tmp_path, capsys):
    g = small_grid()
    runs = {0: {100: curve((0, -13), (16, -12))}, 1: {100: curve((0, -13), (16, -10))}}
    path = tmp_path / "tuned.json"
    write(
        path,
        "twenty_questions",
        "archer",
        tuned.select(g, runs),
        [100],
        [range(3_000_000, 3_000_004)],
    )
    write(path, "guess_my_city", "archer", tuned.select(g, {0: runs[1], 1: runs[0]}), [100], [])
    # another invocation tunes ppo on twenty_questions: archer's entry stays
    ppo = grid.parse_grid(
        {"algorithms": {"ppo": {"grid": {"algorithm.lr": [0.001, 0.002]}}}}, se.ALGORITHMS
    )
    write(
        path,
        "twenty_questions",
        "ppo",
        tuned.select(ppo["ppo"], runs),
        [101],
        [range(3_000_000, 3_000_008)],
        32,
    )
    back = tuned.read_tuned(path)
    chosen = ["algorithm.critic_model.name=policy", "algorithm.actor_lr=0.0003"]
    assert back.entry("twenty_questions", "archer", path).overrides == tuple(chosen)
    assert back.entry("guess_my_city", "archer", path).overrides == (
        chosen[0],
        "algorithm.actor_lr=0.0001",
    )
    assert back.entry("twenty_questions", "ppo", path).overrides == ("algorithm.lr=0.002",)
    archer = back.entry("twenty_questions", "archer", path)
    assert archer.tuning_seeds == (100,) and archer.eval_ranges == (range(3_000_000, 3_000_004),)
    assert archer.settings == {"trajectories": 32, "eval_trajectories": 16, "per_iter": 8}

    o = opts(
        tmp_path, extra=("eval.episodes=4",), algo_extra={"archer": ["algorithm.critic_epochs=1"]}
    )
    overrides, eval_ranges = se.tuned_overrides(o, path, [0, 1])
    assert overrides == {"archer": chosen} and eval_ranges == [range(3_000_000, 3_000_004)]
    assert capsys.readouterr().out == ""  # tuned with this report's budget: no note
    (run, _) = plan.report_runs(o, [0, 1], overrides)
    # env settings, then the tuned values, then the user's: the tuned values reach the run
    assert run.extra == (*TQ, *chosen, "eval.episodes=4", "algorithm.critic_epochs=1")
    assert run.overrides()[-len(run.extra) :] == list(run.extra)
    assert run.run_dir == tmp_path / "archer-seed0"
    both = opts(tmp_path, labels=("archer", "ppo"))
    overrides, eval_ranges = se.tuned_overrides(both, path, [0])
    assert overrides["ppo"] == ["algorithm.lr=0.002"]
    assert eval_ranges == [range(3_000_000, 3_000_004), range(3_000_000, 3_000_008)]

    with pytest.raises(
        tuned.TunedError, match="would replace the tuned value of 'algorithm.actor_lr'"
    ):
        se.tuned_overrides(
            opts(tmp_path, algo_extra={"archer": ["algorithm.actor_lr=0.1"]}), path, [0]
        )
    with pytest.raises(
        grid.SeedOverlapError, match=r"tuning seeds \[100\] and report seeds \[0, 100\]"
    ):
        se.tuned_overrides(opts(tmp_path), path, [0, 100])
    with pytest.raises(
        grid.SeedOverlapError, match=r"tuning seeds \[100, 101\] and report seeds \[101\]"
    ):
        se.tuned_overrides(both, path, [101])  # ppo's tuning seed
    with pytest.raises(
        tuned.TunedError, match="no tuned values for algorithm 'rloo' on 'twenty_questions'"
    ):
        se.tuned_overrides(opts(tmp_path, labels=("archer", "rloo")), path, [0])


def test_report_mode_refuses_tuning_seeds_and_unknown_files(tmp_path, capsys):
    path = tmp_path / "tuned.json"
    choice = tuned.select(small_grid(), {0: {5: curve((0, 1))}, 1: {5: curve((0, 0))}})
    write(path, "twenty_questions", "archer", choice, [5], [])
    with pytest.raises(SystemExit):
        se.main(["--tuned", str(path), "--algorithms", "archer", "--seeds", "4", "5", "--dry-run"])
    assert "tuning seeds [5] and report seeds [4, 5] share [5]" in capsys.readouterr().err
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SystemExit):
        se.main(["--tuned", str(tmp_path / "other.json"), "--algorithms", "archer", "--dry-run"])
    assert "is not a tuned-values file" in capsys.readouterr().err


# ---------------------------------------------------------------- report statistics


RESULTS = {
    # means over the two seeds: archer -13, -11.5, -11, -10; ppo -13, -12.75, -11.5, -11;
    # grpo -13, -13, -12.5, -12
    "archer": {0: curve((0, -13), (8, -12), (16, -11), (24, -10.5)), 1: curve((0, -13), (8, -11), (16, -11), (24, -9.5))},
    "ppo": {0: curve((0, -13), (8, -12.5), (16, -12), (24, -11)), 1: curve((0, -13), (8, -13), (16, -11), (24, -11))},
    "grpo": {0: curve((0, -13), (8, -13), (16, -12.5), (24, -12)), 1: curve((0, -13), (8, -13), (16, -12.5), (24, -12))},
}  # fmt: skip


def test_trajectories_to_reach_thresholds_on_hand_computed_curves():
    t = report.threshold_stats(RESULTS, [-12.0, -11.0, -13.0])
    assert t["archer"]["-12.0"] == {"mean_curve": 8, "per_seed": {0: 8, 1: 8}}
    assert t["archer"]["-11.0"] == {"mean_curve": 16, "per_seed": {0: 16, 1: 8}}
    assert t["ppo"]["-12.0"] == {"mean_curve": 16, "per_seed": {0: 16, 1: 16}}
    assert t["ppo"]["-11.0"] == {"mean_curve": 24, "per_seed": {0: 24, 1: 16}}
    assert t["grpo"]["-11.0"] == {"mean_curve": None, "per_seed": {0: None, 1: None}}
    assert t["grpo"]["-13.0"]["mean_curve"] == 8  # the start (0 trajectories) never counts
    text = report.render_report([], t, None, setup.DEFAULT_PER_ITER, {})
    assert "| archer | 8 (2/2) | 16 (2/2) | 8 (2/2) |" in text
    assert "| grpo | 24 (2/2) | not reached (0/2) | 8 (2/2) |" in text


def test_reference_against_the_best_baseline():
    r = report.best_baseline_ratio(RESULTS, "archer", ["ppo", "grpo"])
    # best final mean: ppo -11 (grpo -12); ppo's mean curve reaches -11 at 24, archer's at 16
    assert r == {
        "metric": "eval_sample/return", "baseline": "ppo", "value": -11.0, "baseline_trajectories": 24,
        "reference": "archer", "reference_trajectories": 16, "ratio": 1.5,
    }  # fmt: skip
    slow = {**RESULTS, "archer": {0: curve((0, -13), (8, -12), (16, -12), (24, -11.5))}}
    assert report.best_baseline_ratio(slow, "archer", ["ppo", "grpo"])["ratio"] is None
    assert report.best_baseline_ratio(RESULTS, "chai", ["ppo"]) is None


def test_final_means_with_bootstrap_intervals():
    finals = {(r["algorithm"], r["metric"]): r for r in report.final_stats(RESULTS)}
    archer = finals[("archer", "eval_sample/return")]
    assert archer["start"] == -13.0 and archer["final"] == -10.0
    assert archer["per_seed"] == {0: -10.5, 1: -9.5}
    assert archer["final_ci"] == [-10.5, -9.5]  # 2 seeds: resampled means are -10.5, -10, -9.5
    assert finals[("ppo", "eval_sample/return")]["final_ci"] == [-11.0, -11.0]
    assert ("archer", "eval/return") not in finals  # no greedy eval in these curves
    text = report.render_report(
        report.final_stats(RESULTS), {}, None, setup.DEFAULT_PER_ITER, {"ppo": {0: 12.4}}
    )
    assert (
        "| archer | 8 | sampled return | -13.000 | -10.000 [-10.500, -9.500] | -10.50, -9.50 |"
        in text
    )
    assert "| ppo seed 0 | 12 |" in text


# ---------------------------------------------------------------- cost estimate


def test_cost_parts_of_a_run_and_the_estimate():
    rows = [
        {"episodes_total": 0, "eval_sample/return": -13.0},  # the start: no iteration
        {"episodes_total": 8, "perf/iteration_s": 10.0, "perf/episodes_per_s": 2.0},  # 4 s training
        {"episodes_total": 16, "perf/iteration_s": 14.0, "perf/episodes_per_s": 1.0, "eval_sample/return": -12.0},
    ]  # fmt: skip
    times = RunTimes(wall_s=120.0, warm_start_s=20.0)
    c = cost.run_cost(rows, times, plan.RunSpec(1_000_000, 3, 2, warm_start=True))
    # training 4 + 8 = 12 s over 16 trajectories; the eval 14 - 8 = 6 s for 3 x 2 episodes;
    # setup = 120 - 20 warm start - (10 + 14) iterations - one start eval of 6 s
    assert c == cost.UnitCost(setup_s=70.0, train_s_per_trajectory=0.75, eval_s_per_episode=1.0)
    run = plan.PlannedRun(
        "report", "twenty_questions", "archer", "archer", "archer", 0, 32, 8, 16, Path("r"), ()
    )
    assert run.evals == 2
    expected = 70.0 + 32 * 0.75 + 3 * 4 * 1.0
    assert cost.estimate(run, plan.RunSpec(1_000_000, 4, 1, warm_start=False), c, 20.0) == expected
    assert (
        cost.estimate(run, plan.RunSpec(1_000_000, 4, 1, warm_start=True), c, 20.0) == expected + 20
    )


def test_dry_run_prints_the_plan_and_its_estimate(tmp_path, capsys):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"algorithms": {
        "archer": {"grid": {"algorithm.actor_lr": [0.0001, 0.0003]}},
        "grpo": {"fixed": ["algorithm.group_size=4"], "grid": {"algorithm.lr": [0.0001, 0.0003]}},
    }}))  # fmt: skip
    costs = tmp_path / "costs.json"
    cost.write_costs(
        costs,
        {"twenty_questions": cost.EnvCost(30.0, {"archer": cost.UnitCost(60.0, 2.0, 0.5)})},
        "synthetic",
    )
    argv = [
        "--tune", str(grid_file), "--algorithms", "archer", "grpo", "--tune-seeds", "100", "101",
        "--per-iter", "grpo=16", "--trajectories", "32", "--eval-trajectories", "16",
        "--root", str(tmp_path / "runs"), "--costs", str(costs), "--dry-run", "--extra", "eval.episodes=4",
    ]  # fmt: skip
    assert se.main(argv) == 0
    out = capsys.readouterr().out
    assert "8 planned runs" in out and "archer-c1" in out and "grpo-c0" in out
    assert "(seeds 3000000..3000003)" in out  # tuning runs are evaluated away from the report's
    # archer: warm start 30 + 60 + 32 x 2 + 3 evals x 4 episodes x 2 modes x 0.5 = 166 s
    # per run, 4 runs
    assert out.count("~2.8 min") == 4 and out.count(", warm start:") == 8
    assert "estimated total: ~11 min of this machine, one run at a time" in out
    assert "(BC warm starts: ~2 min of it)" in out
    assert "per algorithm: archer 4 runs ~11 min\n" in out
    assert cost.duration(7199) == "~120 min" and cost.duration(4 * 3600 + 1) == "~4.0 h"
    assert "not counted, no measured cost: grpo on twenty_questions" in out
    assert not (tmp_path / "runs").exists()
    # 6 trajectories per iteration is not a multiple of group_size 4: refused before any run
    bad = [
        *argv,
        "--algorithms",
        "grpo",
        "--per-iter",
        "grpo=6",
        "--trajectories",
        "36",
        "--eval-trajectories",
        "18",
    ]
    with pytest.raises(
        SystemExit,
        match="grpo-c0 on twenty_questions: .* must be a multiple of algorithm.group_size=4",
    ):
        se.main(bad)


# ---------------------------------------------------------------- the whole pipeline, tiny


TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.intermediate_size=64", "model.num_heads=2",
    "warm_start.enabled=false", "eval.episodes=2", "env=guess_the_number",
]  # fmt: skip


@pytest.mark.slow  # six tiny runs: 20 s on an idle 2-core machine, over a minute when shared
def test_tune_then_report_at_a_tiny_size(tmp_path, capsys):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"algorithms": {
        "archer": {"grid": {"algorithm.actor_lr": [0.0001, 0.0003]}},
        "grpo": {"fixed": ["algorithm.group_size=2"], "grid": {"algorithm.lr": [0.0001, 0.001]}},
    }}))  # fmt: skip
    root = tmp_path / "runs"
    common = [
        "--algorithms", "archer", "grpo", "--trajectories", "4", "--eval-trajectories", "2",
        "--per-iter", "archer=2", "grpo=2", "--root", str(root), "--extra", *TINY,
        "--algo-extra", "archer=algorithm.critic_epochs=1", "archer=algorithm.batch_size=4",
        "archer=algorithm.critic_model.hidden_size=16", "archer=algorithm.critic_model.num_layers=1",
    ]  # fmt: skip
    # the tiny runs play GuessTheNumber, which has no word list to tune on
    no_words = ["--extra", *TINY, "~env.kwargs.word_list"]  # replaces common's --extra
    tune_argv = ["--tune", str(grid_file), "--tune-seeds", "100", *common, *no_words]
    assert se.main(tune_argv) == 0
    tuned_file = root / "tuned.json"
    data = json.loads(tuned_file.read_text())["envs"]["twenty_questions"]
    for a in data["algorithms"].values():
        assert a["tuning_seeds"] == [100] and a["tuning_eval_seeds"] == [[3_000_000, 3_000_002]]
    chosen = {label: a["overrides"] for label, a in data["algorithms"].items()}
    assert (
        chosen["grpo"][0] == "algorithm.group_size=2"
        and len(data["algorithms"]["archer"]["scores"]) == 2
    )
    tune_cfg = json.loads((root / "tune" / "archer-c1-seed100" / "config.json").read_text())
    assert tune_cfg["eval"]["seed"] == 3_000_000 and tune_cfg["algorithm"]["actor_lr"] == 0.0003
    tune_results = json.loads((root / "tune" / "results.json").read_text())
    assert all(s > 0 for s in tune_results["wall_s"].values()) and len(tune_results["wall_s"]) == 4

    costs = tmp_path / "costs.json"
    argv = [
        "--tuned",
        str(tuned_file),
        "--seeds",
        "0",
        "--thresholds",
        "0.5",
        "--write-costs",
        str(costs),
        *common,
    ]
    assert se.main(argv) == 0
    for label in ("archer", "grpo"):
        cfg = json.loads((root / f"{label}-seed0" / "config.json").read_text())
        key, value = chosen[label][-1].split("=")
        assert (
            str(cfg["algorithm"][key.removeprefix("algorithm.")]) == value
        )  # exactly the chosen value
        assert cfg["eval"]["seed"] == 1_000_000
    results = json.loads((root / "results.json").read_text())
    assert (
        results["wall_s"]["archer"]["0"] > 0
        and results["overrides"]["grpo"][len(TQ) :][:2] == chosen["grpo"]
    )
    assert results["report"]["ratio"]["reference"] == "archer"
    assert set(results["report"]["thresholds"]) == {"archer", "grpo"}
    out = capsys.readouterr().out
    assert "95% bootstrap interval over 1 seeds" in out and "Wall time per run" in out
    measured = cost.read_costs(costs)["twenty_questions"]
    assert set(measured.algorithms) == {"archer", "grpo"}
    assert measured.algorithms["archer"].train_s_per_trajectory > 0
    assert measured.warm_start_s is None  # these runs had no warm start
