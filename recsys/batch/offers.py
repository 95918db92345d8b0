"""E-mail offers: only for customers who consented to e-mail, and never a generic list."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from recsys.recommender import Recommender


def email_offers(
    rec: Recommender, user_ids: Iterable[str], k: int = 5
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Offers for users with e-mail consent; counts of who was skipped and why.

    A user with e-mail consent but without personalization consent (or without history) gets no
    offer either: an e-mail of generic best-sellers is not what they agreed to receive.
    """
    users = list(user_ids)
    report = {"offers": 0, "skipped_no_email_consent": 0, "skipped_not_personalized": 0}
    emailable = [u for u in users if rec.has_consent(u, "email")]
    report["skipped_no_email_consent"] = len(users) - len(emailable)
    rows: list[dict] = []
    for recs in rec.recommend_many(emailable, k):
        if not recs.personalized:
            report["skipped_not_personalized"] += 1
            continue
        rows.extend(recs.to_rows())
        report["offers"] += 1
    return pd.DataFrame(rows), report
