"""Locust scenario for benchmarks/http_load.py: page views of known customers and of new
visitors with recent events, against a running ``recsys serve``."""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

USERS = os.environ["LOAD_USERS"].split(",")
ITEMS = os.environ["LOAD_ITEMS"].split(",")
NOW = int(os.environ["LOAD_NOW"])


class Shop(FastHttpUser):
    wait_time = between(0, 0)

    def check(self, r) -> None:
        version = r.headers.get("x-model-version")
        if r.status_code != 200 or not version:
            r.failure(f"status {r.status_code}, version {version!r}")
        else:
            r.success()

    @task(3)
    def page_view(self) -> None:
        user = random.choice(USERS)
        with self.client.get(
            f"/v1/users/{user}/recommendations?k=10", name="GET recommendations",
            catch_response=True,
        ) as r:  # fmt: skip
            self.check(r)

    @task(1)
    def with_events(self) -> None:
        body = {
            "user_id": f"visitor-{random.randrange(10**6)}",
            "k": 10,
            "events": [
                {"item_id": random.choice(ITEMS), "event": "view", "time": NOW} for _ in range(3)
            ],
        }
        with self.client.post(
            "/v1/recommendations", json=body, name="POST recommendations (events)",
            catch_response=True,
        ) as r:  # fmt: skip
            self.check(r)
