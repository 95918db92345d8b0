"""The e-mail offers job (issue #14): eligibility, true reasons, restarts, engines, exposure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from recsys import atomic
from recsys.batch.campaign import Campaign, epoch
from recsys.batch.engines import DaskEngine
from recsys.batch.offers import SKIP_REASONS, OffersJob
from recsys.batch.sendlog import SendLog
from recsys.cli.main import main
from recsys.data.synthetic import END
from recsys.evaluation.metrics import exposure_share
from recsys.privacy import Policy, minimize
from recsys.privacy.consent import SQLiteConsentStore
from recsys.testing.browser import WIDTH, browser, probe_page, screenshot
from recsys.testing.facts import FactChecker
from recsys.types import Evidence, Reason, Recommendation
from tests.conftest import KEY

SEND_AT = "2026-11-23T08:00:00Z"
CAMPAIGN = f"""
id = "weekly-47"
offers = 5
send_at = {SEND_AT}

[exclude]
bought_within_days = 30
categories = ["Books"]

[frequency_cap]
max_emails = 1
days = 7

[suppression]
file = "suppressed.csv"

[exposure]
group = "small_sellers"
"""


@pytest.fixture(scope="module")
def shop_env(tmp_path_factory, fitted, small_shop, pseudonymizer) -> dict:
    """A model directory, a state directory (key, consent, send log) and a campaign file."""
    root = tmp_path_factory.mktemp("offers")
    state = root / "state"
    state.mkdir(mode=0o700)
    key = state / "pseudonym.key"
    key.write_text(KEY.decode())
    key.chmod(0o600)
    fitted.save(root / "model")
    users = small_shop.users
    store = SQLiteConsentStore(state / "state.sqlite")
    store.seed(
        zip(map(pseudonymizer, users["user_id"]), users["consent_personalization"],
            users["consent_email"], strict=True),
        at=END.timestamp(),
    )  # fmt: skip
    ok = users[users["consent_personalization"] & users["consent_email"]]["user_id"].tolist()
    suppressed, capped, old = ok[:3], ok[3:6], ok[6:9]
    pd.DataFrame({"user_id": suppressed}).to_csv(root / "suppressed.csv", index=False)
    log = SendLog(state / "state.sqlite")
    at = epoch(pd.Timestamp(SEND_AT))
    log.record("last-week", map(pseudonymizer, capped), at=at - 2 * 86_400)  # within the cap
    log.record("last-month", map(pseudonymizer, old), at=at - 20 * 86_400)  # outside it
    (root / "campaign.toml").write_text(CAMPAIGN)
    return {
        "root": root, "state": state, "model": root / "model", "store": store, "log": log,
        "campaign": Campaign.from_file(root / "campaign.toml"), "suppressed": suppressed,
        "capped": capped, "old": old,
    }  # fmt: skip


def run_job(env: dict, out: Path, **kwargs) -> tuple[pd.DataFrame, dict]:
    from recsys.model.artifacts import open_model
    from recsys.privacy import Pseudonymizer

    model, ps = open_model(env["model"], Pseudonymizer(KEY))
    kwargs = {"chunk_size": 50, "progress": False, "record": False} | kwargs
    job = OffersJob(model, kwargs.pop("campaign", env["campaign"]), out, env["store"],
                    env["log"], pseudonymizer=ps, **kwargs)  # fmt: skip
    report = job.run()
    return pd.read_parquet(out) if out.suffix == ".parquet" else None, report.to_dict()


@pytest.fixture(scope="module")
def local_run(shop_env) -> tuple[pd.DataFrame, dict]:
    return run_job(shop_env, shop_env["root"] / "local" / "offers.parquet")


def cli(env: dict, out: Path, *extra: str) -> list[str]:
    return ["offers", "--model", str(env["model"]), "--campaign", str(env["root"] / "campaign.toml"),
            "--out", str(out), "--state-dir", str(env["state"]), "--chunk-size", "25",
            "--no-progress", *extra]  # fmt: skip


# --- eligibility ----------------------------------------------------------------------------
def test_offers_go_only_to_customers_who_may_get_them(
    shop_env, local_run, small_shop, pseudonymizer
):
    offers, report = local_run
    users = small_shop.users.assign(key=lambda d: d["user_id"].map(pseudonymizer))
    got = set(offers["pseudonym"])
    no_email = set(users.loc[~users["consent_email"], "key"])
    no_personal = set(users.loc[users["consent_email"] & ~users["consent_personalization"], "key"])
    suppressed = set(map(pseudonymizer, shop_env["suppressed"]))
    capped = set(map(pseudonymizer, shop_env["capped"]))
    assert no_email and no_personal and suppressed and capped
    assert not got & (no_email | no_personal | suppressed | capped)
    assert set(map(pseudonymizer, shop_env["old"])) <= got  # a send 20 days ago does not cap
    skipped = report["skipped"]
    assert skipped["no_email_consent"] == len(no_email)
    assert skipped["no_personalization_consent"] == len(no_personal)
    assert skipped["suppressed"] == len(suppressed)
    assert skipped["frequency_cap"] == len(capped)
    # nothing silently lost: every customer is offered or skipped by a named reason
    assert report["customers"] == len(users) == report["offered"] + sum(skipped.values())
    assert set(skipped) == set(SKIP_REASONS)
    assert report["offered"] == len(got) and report["offers"] == len(offers)


def test_the_report_splits_the_run_time_by_phase(local_run) -> None:
    _, report = local_run
    phases = report["phases"]
    assert list(phases) == ["plan", "chunks", "merge"]
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) == pytest.approx(report["seconds"], abs=1e-6)
    # the job's own bookkeeping, inside the phases it belongs to
    within = report["within"]
    assert list(within) == ["eligibility", "checkpoints", "recheck"]
    assert all(v > 0 for v in within.values())
    assert within["eligibility"] + within["checkpoints"] <= phases["chunks"]
    assert within["recheck"] <= phases["merge"]


def test_exclusions_hold(shop_env, local_run, fitted) -> None:
    offers, _ = local_run
    model = fitted.model_
    cat = model.ctx.catalog
    idx = cat.items.index(offers["item_id"].tolist())
    assert cat.in_stock[idx].all()
    assert not any(c.startswith("Books") for i in idx for c in cat.categories_of(i))
    h, cutoff = model.ctx.history, model.cutoff
    for key, df in offers.groupby("pseudonym"):
        span = h.span(h.users.get(key))
        recent = (h.event[span] == 2) & (h.ts[span] >= cutoff - 30 * 86_400)  # 2: purchase
        bought = set(h.items.ids[h.item[span][recent]])
        assert not bought & set(df["item_id"]), key


def test_one_set_of_offers_per_customer_with_true_reasons_and_intro(
    local_run, small_shop, pseudonymizer, fitted
) -> None:
    offers, _ = local_run
    assert not offers.duplicated(["pseudonym", "rank"]).any()
    assert not offers.duplicated(["pseudonym", "item_id"]).any()
    assert (
        offers.groupby("pseudonym")["rank"].agg(list)
        == pd.Series(
            [[1, 2, 3, 4, 5]] * offers["pseudonym"].nunique(),
            index=sorted(set(offers["pseudonym"])),
        )
    ).all()
    assert (offers["campaign_id"] == "weekly-47").all()
    md = minimize(
        small_shop, Policy.default(), "recommendations", now=END, pseudonymizer=pseudonymizer
    )
    checker = FactChecker(md, Policy.default())
    false, checked = [], 0
    for row in offers.itertuples():
        assert row.reason.strip()
        evidence = tuple(Evidence(**e) for e in json.loads(row.evidence))
        assert evidence, row
        rec = Recommendation(
            row.item_id, row.score, row.rank, Reason(row.reason, evidence=evidence)
        )
        false += checker.check(row.pseudonym, rec)
        checked += len(evidence)
    assert checked > len(offers) and false == []
    cat, sens = fitted.model_.ctx.catalog, fitted.model_.sensitivity
    for _key, df in offers.groupby("pseudonym"):
        names = json.loads(df["intro_categories"].iloc[0])
        assert (df["intro"] == df["intro"].iloc[0]).all()
        assert names and df["intro"].iloc[0].startswith("Picked for you from ")
        leaves = {
            c.split(" > ")[-1]
            for i in cat.items.index(df["item_id"].tolist())
            for c in cat.categories_of(i)
        }
        for n in names:  # every named category holds one of this e-mail's offers
            assert n in leaves and n in df["intro"].iloc[0] and not sens.category(n)


def test_a_withdrawal_during_the_run_wins(shop_env, tmp_path, monkeypatch, pseudonymizer) -> None:
    """A crash after 3 chunks; a customer of a finished chunk opts out; the rerun resumes the
    finished chunks and still leaves the customer out, counted."""
    out = tmp_path / "offers.parquet"
    real, calls = atomic.replace, []

    def crash_on_fourth_chunk(src: Path, dst: Path) -> None:
        if dst.parent.name == "chunks":
            calls.append(dst)
            if len(calls) == 4:
                raise KeyboardInterrupt("killed")
        real(src, dst)

    monkeypatch.setattr(atomic, "replace", crash_on_fourth_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_job(shop_env, out)
    monkeypatch.setattr(atomic, "replace", real)
    assert not out.exists()
    first = pd.read_parquet(calls[0])["pseudonym"].iloc[0]
    store = SQLiteConsentStore(shop_env["store"].path)
    store.set(first, email=False)
    try:
        offers, report = run_job(shop_env, out)
    finally:
        store.set(first, email=True)
    assert report["chunks_resumed"] == 3
    assert first not in set(offers["pseudonym"])
    assert report["skipped"]["consent_withdrawn_during_run"] == 1


# --- restarts -------------------------------------------------------------------------------
def test_killed_at_random_points_and_rerun_gives_the_same_offers(shop_env, tmp_path) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "recsys.cli.main"]
    whole = tmp_path / "whole.parquet"
    subprocess.run(
        [*cmd, *cli(shop_env, whole)], env=env, check=True, timeout=120, capture_output=True
    )
    expected = pd.read_parquet(whole)
    n_chunks = -(-json.loads(whole.with_name("whole.report.json").read_text())["customers"] // 25)
    killed = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        out = tmp_path / f"seed{seed}.parquet"
        chunks = tmp_path / f".{out.name}.job" / "chunks"
        want = int(rng.integers(0, n_chunks + 1))  # kill once this many chunks are on disk
        proc = subprocess.Popen(
            [*cmd, *cli(shop_env, out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if chunks.is_dir() and len(list(chunks.glob("*.parquet"))) >= want:
                time.sleep(float(rng.uniform(0, 0.05)))
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        if rc == -signal.SIGKILL:
            killed += 1
            assert not out.exists() or want >= n_chunks, "published before every chunk was done"
        res = subprocess.run(
            [*cmd, *cli(shop_env, out)], env=env, timeout=120, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr[-2000:]
        got = pd.read_parquet(out)
        assert not got.duplicated(["pseudonym", "rank"]).any()
        pd.testing.assert_frame_equal(got, expected)
        assert not (tmp_path / f".{out.name}.job").exists()
    assert killed >= 2  # the kills really interrupted the job


# --- engines and exposure -------------------------------------------------------------------
def test_local_and_dask_agree_and_the_exposure_target_holds(
    shop_env, local_run, tmp_path, fitted
) -> None:
    pytest.importorskip("distributed")
    offers, report = local_run
    dask_offers, dask_report = run_job(
        shop_env, tmp_path / "dask.parquet", engine=DaskEngine(workers=2, processes=True)
    )
    assert dask_report["engine"] == "dask" and dask_report["chunks"] > 2
    pd.testing.assert_frame_equal(dask_offers, offers)
    assert dask_report["skipped"] == report["skipped"]

    model = fitted.model_
    small = set(model.ctx.catalog.items.ids[model.groups["small_sellers"]])
    target = report["exposure"]["target"]
    lists = offers.sort_values(["pseudonym", "rank"]).groupby("pseudonym")["item_id"].agg(list)
    share = exposure_share(lists.to_dict(), small, 5)
    assert abs(share - report["exposure"]["share"]) < 1e-9
    assert abs(share - target) <= 0.02, (share, target)
    # the target is what moves the share: the boost only ever raises the group, so ask for a
    # share 8 points above what the same campaign gives without a target (how far the plain
    # share is from the default target depends on the shop)
    campaign = shop_env["campaign"]
    base, _ = run_job(
        shop_env,
        tmp_path / "plain.parquet",
        campaign=campaign.model_copy(update={"exposure": None}),
    )
    lists = base.sort_values(["pseudonym", "rank"]).groupby("pseudonym")["item_id"].agg(list)
    want = exposure_share(lists.to_dict(), small, 5) + 0.08
    higher = campaign.exposure.model_copy(update={"target_share": want})
    raised, rep = run_job(
        shop_env,
        tmp_path / "raised.parquet",
        campaign=campaign.model_copy(update={"exposure": higher}),
    )
    lists = raised.sort_values(["pseudonym", "rank"]).groupby("pseudonym")["item_id"].agg(list)
    got = exposure_share(lists.to_dict(), small, 5)
    assert abs(rep["exposure"]["target"] - want) < 1e-12
    assert abs(got - want) <= 0.02, (got, want)


def test_chunk_size_changes_nothing_and_a_sample_calibrates(shop_env, tmp_path) -> None:
    """Calibrated on a third of the customers, in chunks of 20 or all at once: the same offers,
    and the target met within 2 points."""
    runs = [run_job(shop_env, tmp_path / f"c{n}.parquet", chunk_size=n, calibration=90)
            for n in (20, 400)]  # fmt: skip
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    e = runs[0][1]["exposure"]
    assert abs(e["share"] - e["target"]) <= 0.02, e


# --- files, formats, exit codes -------------------------------------------------------------
def test_formats_carry_the_same_rows(shop_env, tmp_path) -> None:
    plain = shop_env["campaign"].model_copy(update={"exposure": None})
    for name in ("o.parquet", "o.csv", "o.jsonl"):
        run_job(shop_env, tmp_path / name, preview_samples=0, campaign=plain)
    offers = pd.read_parquet(tmp_path / "o.parquet")
    csv = pd.read_csv(tmp_path / "o.csv", dtype={"pseudonym": str}, keep_default_na=False)
    jsonl = pd.read_json(tmp_path / "o.jsonl", lines=True, dtype=False)
    for df in (csv, jsonl):
        assert list(df.columns) == list(offers.columns)
        assert df["item_id"].tolist() == offers["item_id"].tolist()
        assert df["reason"].tolist() == offers["reason"].tolist()
        assert df["evidence"].tolist() == offers["evidence"].tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'id = "w"\n[exclude]\nbought_within_days = -3\n',
            "key exclude.bought_within_days: expected greater than or equal to 0 (got -3)",
        ),
        ('id = "w"\nofers = 5\n', "key ofers: unknown key"),
        ("offers = 5\n", "key id: missing"),
        ('id = "w"\n[exposure]\ngroup = 3\n', "key exposure.group: expected a valid string"),
        ('id = "w"\noffers = ', "not valid TOML"),
    ],
)
def test_a_bad_campaign_file_is_exit_2_with_file_and_key(
    shop_env, tmp_path, capsys, text, expected
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    args = cli(shop_env, tmp_path / "o.parquet")
    args[args.index("--campaign") + 1] = str(bad)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and expected in err, err
    assert not (tmp_path / "o.parquet").exists()


def test_cli_run_prints_the_summary_and_records_the_send(shop_env, tmp_path, capsys) -> None:
    out = tmp_path / "o.parquet"
    assert main(cli(shop_env, out)) == 0
    text = capsys.readouterr().out
    report = json.loads(out.with_name("o.report.json").read_text())
    assert f"to {report['offered']:,} of {report['customers']:,} customers" in text
    assert "skipped no email consent" in text and "exposure of small_sellers" in text
    assert "time: plan " in text and ", merge " in text
    log = SendLog(shop_env["log"].path)
    at = epoch(pd.Timestamp(SEND_AT))
    keys = pd.read_parquet(out)["pseudonym"].unique().tolist()
    assert set(log.counts(keys, since=at, until=at + 1, other_than="")) == set(keys)
    assert main([*cli(shop_env, out), "--out", str(tmp_path / "x.txt")]) == 2  # unknown format
    # a rerun of the same campaign is not capped by its own send
    assert main(cli(shop_env, tmp_path / "again.parquet")) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again.parquet"), pd.read_parquet(out))


# --- the preview ----------------------------------------------------------------------------
def test_preview_shows_reasons_and_links(local_run, shop_env) -> None:
    offers, report = local_run
    html = Path(report["preview"]).read_text()
    sample = offers[offers["pseudonym"].isin(list(dict.fromkeys(offers["pseudonym"]))[:5])]
    assert html.count('class="email"') == 5
    for reason in sample["reason"]:
        assert str(escape(reason)) in html
    assert html.count('class="unsubscribe"') == 5 and html.count('class="why"') == 5


@pytest.mark.skipif(browser() is None, reason="no chromium binary: apt-get install -y chromium")
def test_preview_in_a_headless_browser(local_run, tmp_path) -> None:
    _, report = local_run
    page = Path(report["preview"])
    binary = browser()
    assert binary is not None
    shot = tmp_path / "preview.png"
    res = screenshot(binary, page, shot)
    assert shot.exists() and shot.stat().st_size > 10_000, res.stderr[-2000:]
    probe = probe_page(binary, page)
    assert probe.scroll <= probe.client, f"horizontal overflow at {WIDTH} px"
    assert probe.broken == 0 and probe.console_errors == []
    assert probe.dom.count("Why am I seeing this?") >= 10 and "Unsubscribe" in probe.dom
    assert "Picked for you from" in probe.dom


def test_an_override_blocks_an_item_in_every_e_mail(shop_env, local_run, tmp_path) -> None:
    """Issue #17: an overrides file holds on the e-mail batch too (the campaign names it)."""
    offers, _ = local_run
    blocked = offers["item_id"].value_counts().index[0]  # the most offered item
    root = shop_env["root"]  # the campaign's other files are relative to it
    (root / "overrides.toml").write_text(f'[[block]]\nitem = "{blocked}"\nnote = "recalled"\n')
    text = (root / "campaign.toml").read_text()
    (root / "campaign-overrides.toml").write_text(f'overrides = "overrides.toml"\n{text}')
    campaign = Campaign.from_file(root / "campaign-overrides.toml")
    after, _ = run_job(shop_env, tmp_path / "offers.parquet", campaign=campaign)
    assert blocked not in set(after["item_id"])
    assert len(after) > 0.9 * len(offers)  # the rest still get their offers
