"""The ``reconcile`` command.

    reconcile --plan  [-f PATH] [--json] [--detailed-exitcode] [--offline] [--locked]
                      [--state FILE] [--budget-bytes N]
    reconcile --apply [-f PATH] [--json] [--offline] [--locked] [--budget-bytes N]
    reconcile --watch [-f PATH] [--locked] [--host H] [--port P] [--log-format text|json]
    reconcile lock     [-f PATH] [--upgrade [MODEL...]]
    reconcile validate [-f PATH]
    reconcile status   [-f PATH] [--json]
    reconcile verify   [-f PATH] [MODEL...] [--full] [--json]
    reconcile request  NAME [-f PATH] [--wait] [--timeout S] [--json]
    reconcile use      NAME [-f PATH] [--generation-seconds S] [--json]
    reconcile pause    NAME [-f PATH] [--json]
    reconcile resume   NAME [-f PATH] [--json]
    reconcile adopt    NAME... [-f PATH] [--json]
    reconcile lease    NAME [-f PATH] [--ttl S] -- COMMAND [ARG...]
    reconcile schema
    reconcile serve DIR [--host H] [--port P]

Exit codes follow Terraform: 0 success (in sync), 1 error, 2 changes pending (only with
``--detailed-exitcode``).  A usage error is an error (1), never 2, so CI cannot mistake a
typo for pending changes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from controller import __version__, logs
from controller.logs import LogFormat

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
DEFAULT_MANIFESTS = "manifests"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reconcile",
        description=(
            "Keep the models a machine needs present, verified and within its disk budget."
        ),
    )
    parser.add_argument("--version", action="version", version=f"modelsync {__version__}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="show what would change; change nothing")
    mode.add_argument("--apply", action="store_true", help="converge once, then write status")
    mode.add_argument(
        "--watch",
        action="store_true",
        help="run the controller: converge now, then on every manifest edit, resync, update "
        "check and request; serves the HTTP API",
    )
    _manifest_arg(parser)
    _output_args(parser)
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="with --plan: exit 0 in sync, 2 changes pending, 1 error",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="do not contact the hub; plan against the cache and what the hub said last",
    )
    parser.add_argument(
        "--locked",
        action="store_true",
        help="fail (exit 1) unless every manifest has a lock that matches it (for CI)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="with --plan: plan against the status file a machine wrote, not the local disk "
        "(file lists come from the lock)",
    )
    parser.add_argument(
        "--budget-bytes",
        type=_byte_count,
        metavar="N",
        help="with --plan or --apply: the disk budget, in bytes, for what modelsync manages: its "
        "models on disk plus the plan's transfers minus its deletions; retention evicts to keep "
        "to it, and a plan that cannot fit fails (default: "
        "retention.max_storage_usage_percent of the cache disk)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.TEXT.value,
        help="text (default) or json: one JSON object per line, for log collectors",
    )
    parser.add_argument(
        "--host", help="with --watch: the API's address (default: spec.controller.host)"
    )
    parser.add_argument(
        "--port",
        type=int,
        help="with --watch: the API's port, 0 for any free one (default: spec.controller.port)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    validate = sub.add_parser("validate", help="check manifests and report every problem")
    _manifest_arg(validate)
    lock = sub.add_parser(
        "lock", help="resolve each model to a commit and file hashes, in a lock beside its manifest"
    )
    _manifest_arg(lock)
    lock.add_argument(
        "--upgrade",
        nargs="*",
        metavar="MODEL",
        help="re-resolve these models (none named: every model) to what their revision is now",
    )
    st = sub.add_parser("status", help="show the last status written")
    _manifest_arg(st)
    _output_args(st)
    st.add_argument("--status-file", help="read this status file instead of the manifest's")
    ver = sub.add_parser("verify", help="re-check files on disk against their checksums")
    _manifest_arg(ver)
    _output_args(ver)
    ver.add_argument("models", nargs="*", metavar="MODEL", help="only these models")
    ver.add_argument(
        "--full",
        action="store_true",
        help="hash every file, even those unchanged since their last verification",
    )
    req = sub.add_parser(
        "request",
        help="request a model: available now, or queued (on-demand) with a wait estimate",
    )
    req.add_argument("name", metavar="NAME", help="a model name declared in the manifests")
    _manifest_arg(req)
    _output_args(req)
    req.add_argument(
        "--wait",
        action="store_true",
        help="wait until the model is available (exit 0) or failed (exit 1); a reconcile "
        "(--apply or the controller) does the fetching",
    )
    req.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="with --wait: give up after S seconds (exit 2); default: no limit",
    )
    use = sub.add_parser("use", help="record one use of a model (feeds auto priorities)")
    use.add_argument("name", metavar="NAME", help="a model name declared in the manifests")
    _manifest_arg(use)
    _output_args(use)
    use.add_argument(
        "--generation-seconds", type=_seconds, metavar="S", help="how long generating took"
    )
    for verb, text in (
        ("pause", "stop all work on a model until resumed (kept in the state database)"),
        ("resume", "lift a pause"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name", metavar="NAME", help="a model name declared in the manifests")
        _manifest_arg(p)
        _output_args(p)
    adopt = sub.add_parser(
        "adopt",
        help="take ownership of models already in the cache (downloaded by another tool), so "
        "retention may delete them once they are no longer needed",
    )
    adopt.add_argument("names", nargs="+", metavar="NAME", help="models declared in the manifests")
    _manifest_arg(adopt)
    _output_args(adopt)
    lease = sub.add_parser(
        "lease",
        usage="reconcile lease NAME [-f PATH] [--ttl S] -- COMMAND [ARG...]",
        help="run a command while a model is marked in use: retention never deletes it and an "
        "update never switches it meanwhile",
    )
    lease.add_argument("name", metavar="NAME", help="a model name declared in the manifests")
    _manifest_arg(lease)
    lease.add_argument(
        "--ttl",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="the lease lapses S seconds after its last heartbeat (one every S/3) if this "
        "process hangs; it ends at once if this process dies (default: 60)",
    )
    sub.add_parser("schema", help="print the manifest's JSON Schema")
    serve = sub.add_parser(
        "serve", help="serve a cache directory over the Hugging Face hub protocol"
    )
    serve.add_argument("directory", help="a Hugging Face cache directory (models--org--name/...)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    return parser


def _byte_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _manifest_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f",
        "--file",
        dest="path",
        default=DEFAULT_MANIFESTS,
        help="a manifest file or a directory of them (default: manifests/)",
    )


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `reconcile lease NAME [options] -- COMMAND...`: what follows `--` is the command's own,
    # split off here because argparse cannot place options before a trailing command.
    cut = words.index("--") if "--" in words else len(words)
    args = build_parser().parse_args(words[:cut])
    args.run = words[cut + 1 :]
    # A controller reports what it does; a one-shot command only its problems (or -v).
    logs.configure(
        logging.INFO if args.verbose or args.watch else logging.WARNING,
        LogFormat(args.log_format),
    )
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from controller import commands

    if args.command == "schema":
        return commands.schema()
    if args.command == "serve":
        return commands.serve(args.directory, args.host, args.port)
    if args.command == "validate":
        return commands.validate(args.path)
    if args.command == "verify":
        return commands.verify(args.path, args.models, full=args.full, as_json=args.json)
    if args.command == "request":
        return commands.request(
            args.path, args.name, wait=args.wait, timeout=args.timeout, as_json=args.json
        )
    if args.command == "use":
        return commands.use(
            args.path, args.name, generation_seconds=args.generation_seconds, as_json=args.json
        )
    if args.command == "status":
        return commands.show_status(args.path, args.status_file, as_json=args.json)
    if args.command == "lock":
        return commands.lock(args.path, args.upgrade)
    if args.command == "adopt":
        return commands.adopt(args.path, args.names, as_json=args.json)
    if args.command == "lease":
        return commands.lease(args.path, args.name, args.run, ttl=args.ttl)
    if args.run:
        print("reconcile: only `lease` runs a command given after --", file=sys.stderr)
        return EXIT_ERROR
    if args.command in ("pause", "resume"):
        return commands.pause(
            args.path, args.name, resume=args.command == "resume", as_json=args.json
        )
    if (args.host is not None or args.port is not None) and not args.watch:
        print("reconcile: --host and --port only apply to --watch", file=sys.stderr)
        return EXIT_ERROR
    if args.watch:
        return commands.watch(args.path, host=args.host, port=args.port, locked=args.locked)
    if args.state is not None and not args.plan:
        print("reconcile: --state only applies to --plan", file=sys.stderr)
        return EXIT_ERROR
    if args.budget_bytes is not None and not (args.plan or args.apply):
        print("reconcile: --budget-bytes only applies to --plan and --apply", file=sys.stderr)
        return EXIT_ERROR
    if args.plan:
        return commands.plan(
            args.path,
            as_json=args.json,
            detailed=args.detailed_exitcode,
            offline=args.offline,
            locked=args.locked,
            state_file=args.state,
            budget_bytes=args.budget_bytes,
        )
    if args.apply:
        return commands.apply(
            args.path,
            as_json=args.json,
            offline=args.offline,
            locked=args.locked,
            budget_bytes=args.budget_bytes,
        )
    build_parser().print_help(sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
