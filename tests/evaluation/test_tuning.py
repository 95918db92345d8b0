"""`recsys tune`: an Optuna search that keeps its budget, starts from the base settings and
never chooses a re-ranking below the stated long-tail minimum when one reaches it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.cli.main import main
from recsys.config import RecommenderConfig
from recsys.data.synthetic import ShopSpec, make_shop, write_shop
from recsys.evaluation.baselines import EASE, PipelineSystem, with_overrides
from recsys.evaluation.tuning import (
    Choice,
    Range,
    Split,
    collaborative_first,
    collaborative_space,
    parse_budget,
    pipeline_first,
    pipeline_space,
    report,
    rerank_space,
    search,
    search_rerank,
    tune_pipeline,
)


@pytest.fixture(scope="module")
def shop():
    return make_shop(ShopSpec(n_users=300, n_items=100, seed=5))


@pytest.fixture(scope="module")
def split(shop) -> Split:
    return Split.carve(shop.interactions, shop.items, shop.users)


def small(cfg: RecommenderConfig | None = None) -> RecommenderConfig:
    cfg = (cfg or RecommenderConfig()).model_copy(deep=True)
    cfg.ranker.max_iter = 20
    return cfg


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45), (" 2M ", 120)]
)
def test_budgets_read_as_a_shop_writes_them(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "-5m", "10 min", "inf", "nan"])
def test_a_bad_budget_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


def test_the_first_trial_is_the_base_settings_and_the_best_is_no_worse(split: Split) -> None:
    space = {"l2": Range(1.0, 2000.0, log=True)}
    res = search("ease", EASE, space, split, budget_s=60, max_trials=6, first={"l2": 300.0})
    assert res.trials[0].params == {"l2": 300.0}
    assert len(res.trials) == 6
    assert res.ndcg == max(t.ndcg for t in res.trials) >= res.base_ndcg
    # the reported value is what the chosen settings score again, not a stale number
    again = EASE(**res.params).fit(split.inner, split.items, split.users)
    assert split.score(again.recommend_all(sorted(split.truth), 10, split.exclude), 10) == (
        pytest.approx(res.ndcg)
    )


def test_the_budget_stops_the_search(split: Split) -> None:
    """A budget shorter than one trial runs that one trial and starts no other."""
    space = {"l2": Range(1.0, 2000.0, log=True)}
    res = search("ease", EASE, space, split, budget_s=1e-3, max_trials=50)
    assert len(res.trials) == 1


def test_choices_and_integers_are_suggested_within_their_ranges(split: Split) -> None:
    seen = []

    class Probe(EASE):
        def __init__(self, l2: float, mode: str) -> None:
            seen.append((l2, mode))
            super().__init__(l2)

    space = {"l2": Range(10, 20), "mode": Choice(("a", "b"))}
    search("probe", Probe, space, split, budget_s=60, max_trials=5)
    assert all(isinstance(l2, int) and 10 <= l2 <= 20 and mode in "ab" for l2, mode in seen)


def test_the_pipeline_space_follows_the_configs_own_source_order() -> None:
    cfg = RecommenderConfig.from_toml(
        '[[candidates.sources]]\nkind = "trending"\nn = 30\n'
        '[[candidates.sources]]\nkind = "collaborative"\nn = 150\n'
    )
    space = pipeline_space(cfg)
    assert "candidates.sources.1.n" in space and "candidates.sources.0.n" in space
    first = pipeline_first(cfg, space)
    assert first["candidates.sources.1.n"] == 150 and first["candidates.sources.0.n"] == 30
    with_overrides(cfg, first)  # every path exists
    cspace = collaborative_space(cfg)
    assert collaborative_first(cfg, cspace)["regularization"] == 10.0  # ALS's default filled in


def test_rerank_search_keeps_the_long_tail_minimum(split: Split) -> None:
    system = PipelineSystem(small(), rerank=True)
    space = rerank_space(system.config.rerank)
    res = search_rerank(system, space, split, min_long_tail=0.2, budget_s=120, max_trials=8)
    ok = [t for t in res.trials if t.long_tail >= 0.2]
    if ok:
        assert res.met and res.long_tail >= 0.2
        assert res.ndcg == max(t.ndcg for t in ok)
    else:
        assert not res.met
        assert res.long_tail == max(t.long_tail for t in res.trials)
    impossible = search_rerank(system, space, split, min_long_tail=1.0, budget_s=60, max_trials=3)
    assert not impossible.met


def test_tune_writes_a_config_that_round_trips(shop) -> None:
    result = tune_pipeline(
        shop.interactions, shop.items, shop.users, small(), budget_s=120, max_trials=3,
        progress=False,
    )  # fmt: skip
    assert [p.name for p in result.phases] == ["collaborative", "recsys", "rerank"]
    assert all(len(p.trials) == 3 for p in result.phases)
    again = RecommenderConfig.from_toml(result.config.to_toml())
    assert again == result.config
    text = report(result)
    assert "## Ranker and candidates (the whole pipeline): 3 trials" in text
    assert "## Collaborative model" in text and "## Re-ranking" in text and "```toml" in text
    assert np.isfinite(result.model.ndcg)


def test_recsys_tune_then_train_with_its_config(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write_shop(ShopSpec(n_users=250, n_items=80, seed=8), tmp_path / "shop", fmt="csv")
    base = tmp_path / "base.toml"
    base.write_text(small().to_toml())
    args = ["tune", "--data", "shop", "--config", str(base), "--budget", "2m", "--max-trials",
            "2", "--out", "tuned.toml", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "config written to tuned.toml" in capsys.readouterr().out
    assert Path("tuned.md").read_text().startswith("# recsys tune")
    assert main(["train", "--data", "shop", "--config", "tuned.toml", "--out", "m",
                 "--now", "2026-11-01"]) == 0  # fmt: skip


def test_recsys_tune_refuses_a_bad_budget(tmp_path: Path, capsys) -> None:
    write_shop(ShopSpec(n_users=50, n_items=20, seed=1), tmp_path / "shop", fmt="csv")
    code = main(["tune", "--data", str(tmp_path / "shop"), "--budget", "ten", "--out", "x.toml"])
    assert code == 2
    assert "--budget" in capsys.readouterr().err
    assert not (tmp_path / "x.toml").exists()


def test_the_collaborative_step_learns_only_from_consenting_customers(shop, split) -> None:
    """The bare model of step one sees what the pipeline would: minimized data."""
    declined = set(shop.users.loc[~shop.users["consent_personalization"], "user_id"])
    assert declined & set(split.inner["user_id"])  # the raw split has them
    assert not declined & set(split.minimized(RecommenderConfig(), None).inner["user_id"])


def test_a_budget_spent_before_a_step_still_runs_its_base_settings(shop) -> None:
    """No time left is no crash: each step runs its base trial and the report says the
    search was too short."""
    result = tune_pipeline(shop.interactions, shop.items, shop.users, small(), budget_s=1e-3,
                           progress=False)  # fmt: skip
    assert [len(p.trials) for p in result.phases] == [1, 1, 1]
    assert result.config == small()  # the base settings, unchanged
    notes = result.warnings()
    assert len(notes) >= 3 and all("too few to search" in n for n in notes[:3])
    assert "**Note:** collaborative model: only 1 trial" in report(result)


def test_suggested_floats_are_what_the_config_says(split: Split) -> None:
    space = {"l2": Range(1.0, 2000.0, log=True)}
    res = search("ease", EASE, space, split, budget_s=60, max_trials=4)
    for t in res.trials[1:]:
        assert float(f"{t.params['l2']:.3g}") == t.params["l2"]
    assert res.params in [t.params for t in res.trials]


def test_rerank_floor_includes_the_margin(shop) -> None:
    result = tune_pipeline(shop.interactions, shop.items, shop.users, small(), budget_s=120,
                           max_trials=3, min_long_tail=0.1, margin=0.05,
                           progress=False)  # fmt: skip
    assert result.floor == pytest.approx(0.15)
    rr = result.rerank
    if rr.met:
        assert rr.long_tail >= 0.15


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--min-long-tail", "2"], "--min-long-tail 2.0: expected a share in [0, 1)"),
        (["--budget", "inf"], "--budget 'inf': must be a finite duration"),
        (["--max-trials", "0"], "--max-trials 0: expected at least 1"),
    ],
)
def test_recsys_tune_checks_its_options_before_it_runs(
    tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    args = ["tune", "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "x.toml")]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err


def test_recsys_tune_refuses_an_output_it_cannot_write(tmp_path: Path, capsys) -> None:
    code = main(["tune", "--data", str(tmp_path), "--out", str(tmp_path / "no" / "x.toml")])
    assert code == 2
    assert "no directory" in capsys.readouterr().err
