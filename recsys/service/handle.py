"""A served model that can be swapped while requests run (issue #13).

:class:`ModelHandle` loads the published version of a model directory and serves it through a
:class:`~recsys.recommender.Recommender`. A request takes :attr:`ModelHandle.current` once (one
reference read) and runs entirely on that snapshot, so a swap (``reload``, ``update``,
``forget``) never mixes two models inside one request: requests in flight finish on the old one.
``watch`` polls the directory's ``CURRENT`` pointer and reloads when another process publishes
a new version.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import ArtifactError, StaleModelError
from recsys.model.artifacts import Manifest, open_published, pointer_of, save_model
from recsys.model.fitted import FittedModel
from recsys.privacy.consent import ConsentStore
from recsys.privacy.erasure import erase_in_model
from recsys.privacy.pseudonym import Pseudonymizer
from recsys.recommender import Recommender
from recsys.service.update import UpdateReport, apply_events

log = logging.getLogger("recsys.service")


@dataclass(frozen=True)
class ModelInfo:
    """What a response says about the model that produced it."""

    version: str
    """The version directory's name, plus ``+N`` after N in-place updates (events, erasures)."""
    manifest: Manifest = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "version": self.version,
            "format_version": m.format_version,
            "package_versions": m.versions,
            "purpose": m.purpose,
            "data_cutoff": m.data_cutoff,
            "data_fingerprint": m.data_fingerprint,
            "policy_hash": m.policy_hash,
            "training": m.training,
            "index": m.index,
            "files": m.files,
            "pseudonymized": m.pseudonymized,
        }


@dataclass(frozen=True)
class Served:
    """One consistent snapshot: the recommender and the model version it serves."""

    recommender: Recommender
    info: ModelInfo
    pointer: bytes | None = field(default=None, repr=False)


class ModelHandle:
    """The current model of a model directory, swapped atomically; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        consent: ConsentStore | None = None,
        prepare: Callable[[Recommender], Any] | None = None,
    ) -> None:
        """``prepare`` runs on every recommender the handle loads (e.g. attaching the audit
        hooks, :func:`recsys.audit.attach`); forks for updates and erasures carry them over."""
        self.path = Path(path)
        self._pseudonymizer = pseudonymizer
        self._consent = consent
        self._prepare = prepare
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._updates = 0
        self._current = self._load()

    def _load(self) -> Served:
        p = open_published(self.path, self._pseudonymizer)
        rec = Recommender(
            p.model.config, policy=p.model.policy, pseudonymizer=p.pseudonymizer,
            consent=self._consent,
        ).use(p.model)  # fmt: skip
        self._consent = rec.consent_store_  # one store for every version
        if self._prepare is not None:
            self._prepare(rec)
        return Served(rec, ModelInfo(p.version, p.manifest), p.pointer)

    @property
    def current(self) -> Served:
        """The snapshot to serve one request from (take it once per request)."""
        return self._current

    @property
    def version(self) -> str:
        return self._current.info.version

    # --- swapping -----------------------------------------------------------------------------
    def reload(self, *, force: bool = False) -> bool:
        """Load the published version if ``CURRENT`` changed (or ``force``); a failed load keeps
        the model being served and raises. Returns whether a new snapshot was swapped in."""
        with self._lock:
            if not force and pointer_of(self.path) == self._current.pointer:
                return False
            new = self._load()
            self._updates = 0
            self._current = new
        log.info("serving model version %s", new.info.version)
        return True

    def watch(self, interval: float = 2.0) -> None:
        """Poll ``CURRENT`` every ``interval`` seconds in a daemon thread and reload on change."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload()
                except (ArtifactError, OSError) as exc:  # keep serving the loaded version
                    log.error("not swapping in the new model version: %s", exc)

        self._watcher = threading.Thread(target=loop, name="recsys-model-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None

    def _swap(self, rec: Recommender) -> None:
        """Serve ``rec``'s new model under a new snapshot (called with the lock held)."""
        self._updates += 1
        old = self._current
        base = old.info.version.split("+")[0]
        info = ModelInfo(f"{base}+{self._updates}", old.info.manifest)
        self._current = Served(rec, info, old.pointer)

    def _catch_up(self) -> None:
        """(Lock held.) Serve the published version first when another process published one:
        changes go to the newest model, so saving them never rolls a training back. Changes
        made here and not saved yet are refused rather than dropped."""
        if pointer_of(self.path) == self._current.pointer:
            return
        if self._updates:
            raise StaleModelError(
                f"{self.path}: a new version was published over {self.version}, whose "
                "changes are not saved; reload (dropping them) or apply them again after it"
            )
        self._current = self._load()
        log.info("serving model version %s", self._current.info.version)

    def update(self, events: Iterable[Mapping[str, Any]]) -> UpdateReport:
        """Apply new events without retraining (:func:`~recsys.service.update.apply_events`),
        to the newest published version."""
        with self._lock:
            self._catch_up()
            old = self._current.recommender
            model, report = apply_events(
                old.model_, events, consent=old.consent_store_, pseudonymizer=old.pseudonymizer
            )
            if report.applied:
                self._swap(self._fork(old, model))
        return report

    def forget(self, user_id: str) -> dict[str, int]:
        """Erase a user from the served model, the newest published version (tombstone and
        consent record first). A model that holds nothing of theirs is not swapped, so there
        is nothing to save (:attr:`unsaved`)."""
        with self._lock:
            self._catch_up()
            old = self._current.recommender
            model, removed = erase_in_model(
                old.model_, old.consent_store_, user_id, old.pseudonymizer
            )
            if model is not old.model_:
                self._swap(self._fork(old, model))
        return removed

    @property
    def unsaved(self) -> int:
        """How many updates and erasures the served model has that no published version has."""
        return self._updates

    def save(self) -> str:
        """Publish the served model as a new version of the directory (after ``update`` or
        ``forget``), so other processes' watchers load it. Returns the new version's name.
        When another process published since those changes were made, nothing is saved: the
        newest version is served instead and :class:`StaleModelError` says so."""
        with self._lock:
            rec = self._current.recommender
            try:
                save_model(rec.model_, self.path, signer=rec.pseudonymizer,
                           expect=self._current.pointer)  # fmt: skip
            except StaleModelError:
                self._current, self._updates = self._load(), 0
                raise
            served = self._load()
            self._updates = 0
            self._current = served
        return served.info.version

    @staticmethod
    def _fork(rec: Recommender, model: FittedModel) -> Recommender:
        """A new facade over ``model`` with ``rec``'s stores (audit sink and hooks too): the
        snapshot in flight is not touched, and only the new model is warmed up."""
        new = Recommender(
            rec.config, policy=rec.policy, pseudonymizer=rec.pseudonymizer,
            consent=rec.consent_store_,
        ).use(model)  # fmt: skip
        new.pipeline.sink, new.pipeline.hooks = rec.pipeline.sink, rec.pipeline.hooks
        return new
