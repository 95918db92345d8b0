"""The HTTP service (FastAPI): recommendations, explanations, consent, erasure, events, health.

Every response carries the version of the model that produced it (header ``X-Model-Version``
and the body's ``model_version``). A bad request gets a 4xx with a one-line ``detail``, never a
5xx. Logs carry pseudonyms only (uvicorn's access log, which would print raw ids in paths, is
off; :func:`create_app` logs one line per request itself). Admin endpoints (erasure, events,
reload) need the admin token (``$RECSYS_ADMIN_TOKEN`` or ``admin.token`` in the state
directory) in the ``X-Admin-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys import __version__
from recsys.errors import ArtifactError, RecsysError, StaleModelError
from recsys.pipeline.query import make_query
from recsys.service.feedback import feedback_hook, feedback_router
from recsys.service.handle import ModelHandle
from recsys.state import StateDir
from recsys.types import Recommendation

SAVE_TRIES = 3
"""An erasure or a batch of events is applied again to a version another process published
while it was being saved, this many times at most (then 409)."""
log = logging.getLogger("recsys.service")
ENV_ADMIN_TOKEN = "RECSYS_ADMIN_TOKEN"
ADMIN_TOKEN_FILE = "admin.token"
MAX_K = 200
MAX_LIST = 1_000
MAX_EVENTS = 10_000

Id = Annotated[str, Field(min_length=1, max_length=256)]
Time = Annotated[
    int | str,
    Field(description="ISO-8601 date-time (UTC when no offset) or Unix seconds"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecentEvent(Strict):
    item_id: Id
    event: Literal["view", "cart", "purchase", "rating"]
    time: Time


class UserEvent(RecentEvent):
    user_id: Id


class RequestContext(Strict):
    time: Time | None = None
    """What "now" is for trending and re-buy cycles (default: the model's data cut-off, or the
    newest recent event)."""
    basket: list[Id] = Field(default_factory=list, max_length=MAX_LIST)
    """Items already in the basket: left out."""


class RecommendRequest(Strict):
    user_id: Id
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_LIST)
    context: RequestContext | None = None
    events: list[RecentEvent] = Field(default_factory=list, max_length=MAX_LIST)
    """The user's recent events, not yet in the model (a brand-new visitor's too)."""
    personalized: bool = True
    rerank: bool = True


class Item(BaseModel):
    item_id: str
    title: str
    rank: int
    score: float
    reason: str
    explanation: dict[str, Any]
    attributions: dict[str, float]


class RecommendationsOut(BaseModel):
    model_version: str
    user_id: str
    personalized: bool
    items: list[Item]
    shortfall: int = Field(0, description="items of the k asked for that rules left out")
    ignored_events: int = Field(
        0, description="recent events on items the model does not know (not folded in)"
    )


class ExplanationOut(BaseModel):
    model_version: str
    user_id: str
    item: Item


class ConsentIn(Strict):
    personalization: bool | None = None
    email: bool | None = None


class ConsentOut(BaseModel):
    model_version: str
    user_id: str
    personalization: bool
    email: bool


class ErasureOut(BaseModel):
    model_version: str
    erased: dict[str, int]
    known: bool
    """Whether anything of the user's was held (the tombstone is recorded either way, so
    their data is never used again)."""


class EventsIn(Strict):
    events: list[UserEvent] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsOut(BaseModel):
    model_version: str
    applied: int
    users: int
    new_users: int
    skipped: dict[str, int]


class Status(BaseModel):
    model_version: str
    status: str


class ModelOut(BaseModel):
    model_version: str
    model: dict[str, Any]


class Problem(BaseModel):
    model_version: str
    detail: str


def admin_token(state: StateDir | None = None) -> str | None:
    """``$RECSYS_ADMIN_TOKEN``, else the state directory's ``admin.token`` (``None``: admin
    endpoints are off)."""
    token = os.environ.get(ENV_ADMIN_TOKEN)
    if token:
        return token.strip()
    f = (state or StateDir.resolve()).root / ADMIN_TOKEN_FILE
    return f.read_text().strip() or None if f.is_file() else None


def _item(r: Recommendation) -> Item:
    return Item(**r.to_dict())


def create_app(handle: ModelHandle, *, token: str | None = None) -> FastAPI:
    """The FastAPI application serving ``handle``'s current model."""
    app = FastAPI(
        title="recsys",
        version=__version__,
        description="Explainable recommendations: every item with a reason and its evidence.",
    )
    errors = {400: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}

    def problem(status: int, detail: str) -> JSONResponse:
        return JSONResponse(
            {"model_version": handle.version, "detail": detail},
            status_code=status,
            headers={"X-Model-Version": handle.version},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return problem(422, f"{where}: {first.get('msg', 'invalid')}{more}")

    @app.exception_handler(StarletteHTTPException)  # ours, and routing's own 404 / 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def version_header(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Model-Version", handle.version)
        return response

    def pseudonym(served, user_id: str) -> str:
        ps = served.recommender.pseudonymizer
        return ps(user_id) if ps else hashlib.sha256(user_id.encode()).hexdigest()[:16]

    def require_admin(x_admin_token: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(
                403,
                f"admin endpoints are off: set {ENV_ADMIN_TOKEN}, or write the token to "
                f"{ADMIN_TOKEN_FILE} in the state directory, and restart the server",
            )
        if x_admin_token is None or not hmac.compare_digest(x_admin_token, token):
            raise HTTPException(401, "missing or wrong X-Admin-Token")

    def recommend(body: RecommendRequest) -> RecommendationsOut:
        served = handle.current
        ctx = body.context.model_dump(exclude_none=True) if body.context else None
        try:
            q = make_query(
                body.user_id, body.k, exclude=body.exclude, context=ctx,
                personalized=body.personalized, rerank=None if body.rerank else False,
                events=[e.model_dump() for e in body.events],
            )  # fmt: skip
            recs = served.recommender.pipeline.run([q])[0]
        except (ValueError, TypeError, OverflowError) as exc:
            raise HTTPException(422, str(exc).splitlines()[0]) from None
        log.info(
            "recommend user=%s k=%d events=%d personalized=%s version=%s",
            pseudonym(served, body.user_id), body.k, len(body.events), recs.personalized,
            served.info.version,
        )  # fmt: skip
        return RecommendationsOut(
            model_version=served.info.version,
            user_id=body.user_id,
            personalized=recs.personalized,
            items=[_item(r) for r in recs],
            shortfall=recs.shortfall,
            ignored_events=recs.ignored_events,
        )

    @app.post("/v1/recommendations", response_model=RecommendationsOut, responses=errors)
    def post_recommendations(body: RecommendRequest) -> RecommendationsOut:
        """Top-k items for a user, each with its reason; recent events fold in at once."""
        return recommend(body)

    @app.get(
        "/v1/users/{user_id}/recommendations", response_model=RecommendationsOut, responses=errors
    )
    def get_recommendations(
        user_id: Annotated[str, Path(min_length=1, max_length=256)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        exclude: Annotated[list[str], Query(max_length=MAX_LIST)] = [],  # noqa: B006
        time: Annotated[str | None, Query(max_length=64)] = None,
        personalized: bool = True,
        rerank: bool = True,
    ) -> RecommendationsOut:
        """Top-k items for a user (no recent events: use POST for those)."""
        ctx = RequestContext(time=time) if time is not None else None
        try:
            body = RecommendRequest(
                user_id=user_id, k=k, exclude=exclude, context=ctx,
                personalized=personalized, rerank=rerank,
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HTTPException(422, f"{where}: {first['msg']}") from None
        return recommend(body)

    @app.get(
        "/v1/users/{user_id}/items/{item_id}/explanation",
        response_model=ExplanationOut,
        responses=errors,
    )
    def explanation(user_id: str, item_id: str) -> ExplanationOut:
        """Score, attributions and reason of any item for a user, recommended or not."""
        served = handle.current
        try:
            rec = served.recommender.explain(user_id, item_id)
        except KeyError:
            raise HTTPException(404, f"unknown item {item_id!r}") from None
        log.info("explain user=%s version=%s", pseudonym(served, user_id), served.info.version)
        return ExplanationOut(model_version=served.info.version, user_id=user_id, item=_item(rec))

    @app.put("/v1/users/{user_id}/consent", response_model=ConsentOut, responses=errors)
    def set_consent(user_id: str, body: ConsentIn) -> ConsentOut:
        """Record a consent change: durable, shared by every worker, applied at the next request."""
        served = handle.current
        rec = served.recommender
        rec.set_consent(user_id, body.personalization, body.email)
        log.info("consent user=%s %s", pseudonym(served, user_id), body.model_dump())
        return ConsentOut(
            model_version=served.info.version,
            user_id=user_id,
            personalization=rec.has_consent(user_id),
            email=rec.has_consent(user_id, "email"),
        )

    @app.get("/v1/users/{user_id}/consent", response_model=ConsentOut, responses=errors)
    def get_consent(user_id: str) -> ConsentOut:
        served = handle.current
        rec = served.recommender
        return ConsentOut(
            model_version=served.info.version,
            user_id=user_id,
            personalization=rec.has_consent(user_id),
            email=rec.has_consent(user_id, "email"),
        )

    @app.delete(
        "/v1/users/{user_id}",
        response_model=ErasureOut,
        responses={**errors, 401: {"model": Problem}, 403: {"model": Problem}},
        dependencies=[Depends(require_admin)],
    )
    def erase(user_id: str) -> ErasureOut:
        """Erase a user: tombstone and consent record at once (every worker stops personalizing
        them), then the model, published as a new version that every worker reloads. A model
        that held nothing of theirs is not published again (``known`` is then false unless
        a consent, audit or feedback record was removed)."""
        pseudo = pseudonym(handle.current, user_id)
        removed: dict[str, int] = {}
        changed = False
        for attempt in range(SAVE_TRIES):
            try:
                for what, n in handle.forget(user_id).items():  # all tries: what was removed
                    removed[what] = max(n, removed.get(what, 0))
                changed = changed or handle.unsaved > 0
                version = handle.save() if handle.unsaved else handle.version
                break
            except StaleModelError as exc:  # a version published meanwhile: erase from it too
                if attempt == SAVE_TRIES - 1:
                    raise HTTPException(409, str(exc)) from None
            except RecsysError as exc:
                raise HTTPException(409, str(exc)) from None
        known = changed or any(removed.values())
        log.info("erased user=%s known=%s version=%s", pseudo, known, version)
        return ErasureOut(model_version=version, erased=removed, known=known)

    @app.post(
        "/v1/events",
        response_model=EventsOut,
        responses={**errors, 401: {"model": Problem}, 403: {"model": Problem}},
        dependencies=[Depends(require_admin)],
    )
    def events(body: EventsIn) -> EventsOut:
        """Apply new events without retraining and publish the result as a new version."""
        for attempt in range(SAVE_TRIES):
            try:
                report = handle.update([e.model_dump() for e in body.events])
                version = handle.save() if report.applied else handle.version
                break
            except (ValueError, TypeError, OverflowError) as exc:
                raise HTTPException(422, str(exc).splitlines()[0]) from None
            except StaleModelError as exc:  # a version published meanwhile: apply to it
                if attempt == SAVE_TRIES - 1:
                    raise HTTPException(409, str(exc)) from None
            except RecsysError as exc:
                raise HTTPException(409, str(exc)) from None
        log.info("events applied=%d version=%s", report.applied, version)
        return EventsOut(model_version=version, **report.to_dict())

    @app.post(
        "/v1/admin/reload",
        response_model=Status,
        responses={401: {"model": Problem}, 403: {"model": Problem}, 409: {"model": Problem}},
        dependencies=[Depends(require_admin)],
    )
    def reload() -> Status:
        """Swap in the directory's published version now (workers also poll for it)."""
        try:
            swapped = handle.reload()
        except ArtifactError as exc:
            raise HTTPException(409, f"kept version {handle.version}: {exc}") from None
        return Status(model_version=handle.version, status="swapped" if swapped else "current")

    @app.get("/v1/model", response_model=ModelOut)
    def model_info() -> ModelOut:
        """The served model's manifest: versions, fingerprints, training metrics, file digests."""
        info = handle.current.info
        return ModelOut(model_version=info.version, model=info.to_dict())

    @app.get("/health", response_model=Status)
    def health() -> Status:
        return Status(model_version=handle.version, status="ok")

    @app.get("/ready", response_model=Status)
    def ready() -> Status:
        return Status(model_version=handle.version, status="ready")

    app.include_router(feedback_router(handle), responses={**errors, 403: {"model": Problem}})
    return app


def app_from_env() -> FastAPI:
    """The application a uvicorn worker process builds (``recsys serve --workers N``): model
    directory and options from the environment the parent set."""
    from recsys.privacy.consent import SQLiteConsentStore

    state = StateDir.resolve(os.environ.get("RECSYS_SERVE_STATE_DIR") or None)
    handle = ModelHandle(
        FilePath(os.environ["RECSYS_SERVE_MODEL"]), consent=SQLiteConsentStore(state.database),
        prepare=feedback_hook(
            state.database, overrides=os.environ.get("RECSYS_SERVE_OVERRIDES") or None,
            audit=os.environ.get("RECSYS_SERVE_AUDIT") == "1",
        ),
    )  # fmt: skip
    handle.watch(float(os.environ.get("RECSYS_SERVE_WATCH", "2")))
    return create_app(handle, token=admin_token(state))
