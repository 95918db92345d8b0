"""An HTML preview of sample e-mails, for the people who approve a campaign before it goes out.

Rendered from a Jinja2 template (autoescaped): each e-mail shows its intro line, every offer
with its reason, an unsubscribe link and a "why am I seeing this?" link to the evidence behind
each reason. The page runs no script.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pandas as pd

from recsys import atomic
from recsys.batch.campaign import Campaign

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("recsys.batch", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def render_preview(campaign: Campaign, offers: pd.DataFrame) -> str:
    """The preview page for the e-mails in ``offers`` (rows of the offer table)."""
    emails = []
    for n, (key, df) in enumerate(offers.groupby("pseudonym", sort=False)):
        df = df.sort_values("rank")
        emails.append(
            {
                "n": n,
                "pseudonym": key,
                "intro": df["intro"].iloc[0],
                "unsubscribe": campaign.unsubscribe_url.format(campaign=campaign.id, pseudonym=key),
                "offers": [
                    {**row, "facts": json.loads(row["evidence"])} for row in df.to_dict("records")
                ],
            }
        )
    return _ENV.get_template("offers_preview.html.j2").render(campaign=campaign, emails=emails)


def write_preview(path: Path, campaign: Campaign, offers: pd.DataFrame) -> None:
    atomic.write_bytes_atomic(path, render_preview(campaign, offers).encode())
