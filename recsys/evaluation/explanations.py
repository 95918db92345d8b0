"""Explanation metrics: are reasons present, exact, true, and do they matter?"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recsys.recommender import Recommender
from recsys.testing.facts import FactChecker
from recsys.types import Recommendations

HISTORY_FACTS = ("chosen_together", "similar_to", "bought_before")


def explanation_metrics(
    rec: Recommender,
    lists: Mapping[str, Recommendations],
    checker: FactChecker | None = None,
    *,
    deletion_sample: int = 100,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Reason coverage, attribution additivity error, evidence validity and the deletion test;
    per template, how often it spoke and how often an applicability rule refused it.

    Deletion test: for recommendations whose top reason cites an item from the user's own
    history, remove that item and re-solve the user's collaborative vector; the share of cases
    where the recommended item's score drops (a reason that matters should lower it).
    """
    n = with_reason = facts = true_facts = violations = 0
    additivity = 0.0
    cases = []
    templates: dict[str, dict[str, int]] = {}
    for user, recs in lists.items():
        key = rec.key_of(user)
        for r in recs:
            n += 1
            with_reason += bool(r.reason.text.strip())
            if r.attributions:
                total = rec.model_.ranker.base + sum(v for _, v in r.attributions)
                additivity = max(additivity, abs(total - r.score))
            for ev in r.reason.evidence:
                templates.setdefault(str(ev.fact), {"fired": 0, "refused": 0})["fired"] += 1
            for fact in r.reason.refused:
                templates.setdefault(fact, {"fired": 0, "refused": 0})["refused"] += 1
            if checker is not None:
                for ev in r.reason.evidence:
                    facts += 1
                    true_facts += checker.holds(key, r.item_id, ev)
                violations += len(checker.check(key, r))
            if r.reason.evidence and r.reason.evidence[0].fact in HISTORY_FACTS:
                ev = r.reason.evidence[0]
                if ev.item_id and ev.item_id != r.item_id:
                    cases.append((user, r.item_id, ev.item_id))
    dropped = None
    tested = 0
    if cases and rec.model_.ctx.collab.algorithm == "als":
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(cases), size=min(deletion_sample, len(cases)), replace=False)
        lower = 0
        for j in sorted(pick):
            user, item, evidence_item = cases[j]
            before, after = rec.counterfactual_score(user, item, [evidence_item])
            lower += after < before
            tested += 1
        dropped = lower / tested
    return {
        "recommendations": n,
        "reason_coverage": with_reason / n if n else 0.0,
        "additivity_max_error": additivity,
        "evidence_validity": true_facts / facts if facts else None,
        "facts_checked": facts,
        "deletion_test_lowered": dropped,
        "deletion_cases": tested,
        "rule_violations": violations if checker is not None else None,
        "templates": dict(sorted(templates.items())),
    }
