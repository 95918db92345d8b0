"""The validated data set that flows into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from recsys.data.validation import ValidationReport


@dataclass(frozen=True)
class Dataset:
    """Validated tables with canonical columns.

    ``audit`` holds protected attributes; it is kept apart so that model code, which receives
    minimized data only, can never read it.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    audit: pd.DataFrame | None = None
    report: ValidationReport = field(default_factory=ValidationReport, compare=False)
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        return (
            f"{len(self.interactions):,} interactions, {self.n_users:,} users, "
            f"{self.n_items:,} items, {self.report.n_rejected:,} rejected"
        )
