"""``recsys serve --model DIR``: the HTTP service (recsys.service; extra ``serve``)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from recsys.cli.accountability import add_overrides_arg
from recsys.cli.data_args import add_key_arg, pseudonymizer_from_args, state_from_args
from recsys.errors import ConfigError


def register(sub: Any) -> None:
    """Add ``serve`` to the subcommands ``sub`` (argparse's subparsers)."""
    s = sub.add_parser(
        "serve",
        help="serve recommendations over HTTP (FastAPI + uvicorn)",
        epilog="exit codes: 0 stopped, 2 the model cannot be served (missing, tampered, "
        "truncated, newer format, wrong key) or bad options. Admin endpoints (erasure, events, "
        "reload) need $RECSYS_ADMIN_TOKEN or admin.token in the state directory.",
    )
    add_key_arg(s)
    s.add_argument("--model", required=True, metavar="DIR", help="model directory to serve")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes (share consent)")
    s.add_argument(
        "--watch", type=float, default=2.0, metavar="SECONDS",
        help="poll the model directory's CURRENT pointer this often and swap in a new version "
        "(0, one worker only: on POST /v1/admin/reload, which reaches one worker of several)",
    )  # fmt: skip
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_overrides_arg(s, audit=True)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from recsys.service.app import admin_token, create_app
        from recsys.service.feedback import feedback_hook
        from recsys.service.handle import ModelHandle
    except ImportError as exc:
        raise ConfigError(
            f"recsys serve needs the serve extra: pip install 'recsys[serve]' ({exc})"
        ) from None
    from recsys.privacy.consent import SQLiteConsentStore
    from recsys.privacy.pseudonym import ENV_KEY, ENV_KEY_FILE

    if args.workers < 1 or not 0 <= args.port <= 65535 or args.watch < 0:
        raise ConfigError("--workers must be at least 1, --port 0 to 65535, --watch 0 or more")
    if args.workers > 1 and not args.watch:
        raise ConfigError(
            "--watch 0 needs --workers 1: POST /v1/admin/reload reaches one worker of several, "
            "the others swap in a new version by watching CURRENT (e.g. --watch 2)"
        )
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    state = state_from_args(args)
    ps = pseudonymizer_from_args(args)
    store = SQLiteConsentStore(state.database)
    # "not interested" honoured at the next request; overrides and the audit trail if asked
    hook = feedback_hook(state.database, overrides=args.overrides, audit=args.audit)
    handle = ModelHandle(args.model, pseudonymizer=ps, consent=store, prepare=hook)  # or exit 2
    print(f"serving model version {handle.version} of {args.model} on {args.host}:{args.port}")
    common = {"host": args.host, "port": args.port, "log_level": args.log_level}
    if args.workers == 1:
        if args.watch:
            handle.watch(args.watch)
        app = create_app(handle, token=admin_token(state))
        uvicorn.run(app, access_log=False, **common)
        handle.stop()
        return 0
    # worker processes build their own handle from the environment (recsys.service.app)
    os.environ["RECSYS_SERVE_MODEL"] = str(args.model)
    os.environ["RECSYS_SERVE_STATE_DIR"] = str(state.root)
    os.environ["RECSYS_SERVE_WATCH"] = str(args.watch)
    os.environ["RECSYS_SERVE_OVERRIDES"] = (
        str(Path(args.overrides).resolve()) if args.overrides else ""
    )
    os.environ["RECSYS_SERVE_AUDIT"] = "1" if args.audit else ""
    if not os.environ.get(ENV_KEY):
        os.environ.setdefault(ENV_KEY_FILE, str(args.key_file or state.key_file))
    uvicorn.run(
        "recsys.service.app:app_from_env", factory=True, workers=args.workers,
        access_log=False, **common,
    )  # fmt: skip
    return 0
