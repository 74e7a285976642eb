"""`ratio-zoom`: the command line deployments rely on.

Every command reads the settings first and exits with status 2 and one clear line on a configuration
error. Commands that use a Temporal client leave through `os._exit` after flushing output, because the
SDK's runtime can crash at interpreter shutdown (sdk-python issue #300) and must not change our exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ratio_zoom.core.settings import ConfigurationError, Settings, load_settings

# Imported only by `ratio-zoom dev` and `ratio-zoom emulate` (pyproject's `dev` extra).
DEV_EXTRA_MODULES = frozenset({"aiosmtpd", "openapi_schema_validator"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ratio-zoom", description="Zoom meetings in lock-step with Ratio appointments.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run the Temporal worker")
    sub.add_parser("api", help="run the HTTP API (bound to API_BIND)")
    db = sub.add_parser("db", help="database commands")
    db.add_argument("action", choices=["upgrade", "current"])
    emulate = sub.add_parser("emulate", help="run an emulator of an outside service")
    emulate.add_argument("service", choices=["zoom", "recording-bot", "smtp"])
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=9090)
    dev = sub.add_parser("dev", help="run everything locally as one supervised process tree")
    dev.add_argument("--emulate", action="store_true", help="run the Zoom emulator and point the service at it")
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--temporal-port", type=int, default=7233)
    dev.add_argument("--api-port", type=int, default=8080)
    dev.add_argument("--emulator-port", type=int, default=9090)
    dev.add_argument("--smtp-port", type=int, default=2525, help="SMTP sink; its HTTP listing is on the next port")
    dev.add_argument("--data-dir", default=".data")
    keys = sub.add_parser("keys", help="encryption key commands")
    keys.add_argument("action", choices=["rotate", "generate"])
    audit = sub.add_parser("audit", help="audit trail commands")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="verify every workspace's hash chain")
    export = audit_sub.add_parser("export", help="export the lifecycle of an appointment or workspace")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--appointment")
    target.add_argument("--workspace")
    export.add_argument("--since")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    from ratio_zoom.cli.appointment import add_appointment_commands

    add_appointment_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "keys" and args.action == "generate":
            from ratio_zoom.core.keyring import KeyRing

            print(KeyRing.generate_entry("k1"))
            return 0
        settings = load_settings()
        if args.command in ("worker", "api"):
            from ratio_zoom.core.logs import configure_logging

            configure_logging(settings.log_level, settings.log_format)
        return _dispatch(args, settings)
    except ConfigurationError as exc:
        print(f"ratio-zoom: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        # The emulators and the supervised dev server live in the `dev` extra, which the production image
        # does not install: say so in one line instead of a traceback.
        if args.command in ("dev", "emulate") and exc.name in DEV_EXTRA_MODULES:
            print(f"ratio-zoom {args.command}: needs the dev extra ({exc.name} is missing): "
                  "pip install -e '.[dev]'", file=sys.stderr)
            return 2
        raise


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "db":
        from ratio_zoom.storage.migrate import current_revision, upgrade_to_head

        if args.action == "upgrade":
            upgrade_to_head(settings.database_url)
            print(f"database at revision {current_revision(settings.database_url)}")
        else:
            print(current_revision(settings.database_url) or "empty")
        return 0
    if args.command == "worker":
        settings.token_keyring()
        settings.require("ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET")
        from ratio_zoom.worker_app import run_worker

        return _run_with_client(lambda: run_worker(settings))
    if args.command == "api":
        settings.token_keyring()
        settings.require("INTERNAL_API_TOKEN", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_REDIRECT_URI")
        from ratio_zoom.http_api.server import run_api

        return _run_with_client(lambda: run_api(settings))
    if args.command == "emulate":
        return _emulate(args)
    if args.command == "dev":
        from ratio_zoom.cli.dev import run_dev

        from pathlib import Path

        return run_dev(settings, emulate=args.emulate, ui_port=args.ui_port, temporal_port=args.temporal_port,
                       api_port=args.api_port, emulator_port=args.emulator_port, smtp_port=args.smtp_port,
                       data_dir=Path(args.data_dir))
    if args.command == "keys":
        from ratio_zoom.connections.rotate import rotate_keys

        counts = asyncio.run(rotate_keys(settings))
        print(f"re-encrypted {counts} under key {settings.token_keyring().active_kid!r}")
        return 0
    if args.command == "audit":
        from ratio_zoom.cli.audit import run_audit

        return asyncio.run(run_audit(settings, args))
    if args.command == "appointment":
        from ratio_zoom.cli.appointment import run_appointment

        return _run_with_client(lambda: run_appointment(settings, args))
    raise AssertionError(args.command)


def _emulate(args: argparse.Namespace) -> int:
    if args.service == "zoom":
        from ratio_zoom.emulators.zoom_server.app import config_from_env, serve

        serve(args.host, args.port, config_from_env())
    elif args.service == "recording-bot":
        from ratio_zoom.emulators.recording_bot.app import config_from_env as bot_config
        from ratio_zoom.emulators.recording_bot.app import serve as bot_serve

        bot_serve(args.host, args.port, bot_config())
    else:
        from ratio_zoom.emulators.smtp_sink.server import serve as smtp_serve  # SMTP on --port, HTTP on --port + 1

        smtp_serve(args.host, args.port, args.port + 1)
    return 0


def _run_with_client(factory: Callable[[], Coroutine[Any, Any, int | None]]) -> int:
    try:
        code = asyncio.run(factory()) or 0
    except ConfigurationError as exc:
        print(f"ratio-zoom: configuration error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
