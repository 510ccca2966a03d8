"""The ``reconcile`` command.

    reconcile --plan  [-f PATH] [--json] [--detailed-exitcode] [--offline] [--locked]
                      [--state FILE] [--budget-bytes N]
    reconcile --apply [-f PATH] [--json] [--offline] [--locked] [--budget-bytes N]
    reconcile --watch [-f PATH] [--offline] [--locked] [--host H] [--port P]
    reconcile lock     [-f PATH] [--upgrade [MODEL...]]
    reconcile validate [-f PATH]
    reconcile status   [-f PATH | --status-file F | --from URL...] [--json]
    reconcile wait     NAME... [-f PATH] [--timeout S]
    reconcile verify   [-f PATH] [MODEL...] [--full] [--json]
    reconcile request  NAME [-f PATH] [--wait [--timeout S]] [--json]
    reconcile use      NAME [-f PATH] [--generation-seconds S] [--json]
    reconcile pause    NAME [-f PATH] [--json]
    reconcile resume   NAME [-f PATH] [--json]
    reconcile adopt    NAME... [-f PATH] [--json]
    reconcile lease    NAME [-f PATH] [--ttl S] -- COMMAND [ARG...]
    reconcile schema
    reconcile serve DIR [--host H] [--port P] [--upstream URL] [--max-bytes N]

Every command also takes ``-v`` and ``--log-format text|json``.  An option given before a
command's name means what it means after it; an option that the mode or command would not
use is refused (exit 1) rather than ignored, so that a user never believes it took effect.
Exit codes: :class:`controller.system.exits.ExitCode` (0 ok, 1 error or bad usage, 2 changes pending
with ``--plan --detailed-exitcode``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from controller import __version__
from controller.cli import logs
from controller.cli.logs import LogFormat
from controller.system.exits import ExitCode

DEFAULT_MANIFESTS = "manifests"
_TOKEN_ENV = "MODELSYNC_API_TOKEN"  # controller.api.discovery's, unimported: parsing stays quick
SERVE_HOST, SERVE_PORT = "127.0.0.1", 8080
_MODES = ("plan", "apply", "watch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.ERROR, f"{self.prog}: error: {message}\n")


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
    _manifest_arg(parser, command=False)
    _output_args(parser, command=False)
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="with --plan: exit 0 in sync, 2 changes pending, 1 error",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="send no request to the hub: plan against the cache and what the hub said "
        "last; an apply links files from cached blobs and fails the ones that need the hub "
        "(--watch: every pass, so no update checks either)",
    )
    parser.add_argument(
        "--locked",
        action="store_true",
        help="fail (exit 1) unless every manifest has a lock that matches it (for CI); with "
        "--watch, an edit whose lock does not match is rejected",
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
    _logging_args(parser, command=False)
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
    st.add_argument(
        "--status-file", help="read this status file instead of the manifest's (not with -f)"
    )
    st.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="URL",
        help="ask the running controller at URL (repeat for several): one table of node x "
        f"model; the token comes from {_TOKEN_ENV}; exit 1 when one does not answer",
    )
    wait = sub.add_parser(
        "wait",
        help="wait until models are AVAILABLE (exit 0), one FAILED (1) or the timeout (2); "
        "for init containers and scripts",
    )
    wait.add_argument("names", nargs="+", metavar="NAME", help="models declared in the manifests")
    _manifest_arg(wait)
    wait.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="give up after S seconds (exit 2); 0 looks once; default: 3600 (an hour)",
    )
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
        help="with --wait: give up after S seconds (exit 2); default: 3600 (an hour)",
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
        type=_positive_seconds,
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
    # The top level's --host/--port (None) stand when given before `serve`; the defaults
    # are applied after parsing.
    _either_side(
        serve,
        "--host",
        command=True,
        default=None,
        help=f"the address to listen on (default: {SERVE_HOST})",
    )
    _either_side(
        serve,
        "--port",
        type=int,
        command=True,
        default=None,
        help=f"the port (default: {SERVE_PORT})",
    )
    serve.add_argument(
        "--upstream",
        metavar="URL",
        help="a pull-through mirror: fetch what DIR lacks from this hub (the Hub, or another "
        "mirror), verified, with the token in HF_TOKEN; gated and private repos are served only "
        "to clients whose own token the upstream accepts",
    )
    serve.add_argument(
        "--max-bytes",
        type=_byte_count,
        metavar="N",
        help="with --upstream: keep DIR within N bytes, deleting the least recently served "
        "files first",
    )
    for command in sub.choices.values():
        _logging_args(command)
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


def _positive_seconds(text: str) -> float:
    """A duration that must pass before anything happens: a lease that lapses at once
    protects nothing, and the state database refuses it."""
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _manifest_arg(p: argparse.ArgumentParser, *, command: bool = True) -> None:
    # None, not manifests/: an explicit -f must be told from no -f at all.
    _either_side(
        p,
        "-f",
        "--file",
        dest="path",
        command=command,
        default=None,
        help="a manifest file or a directory of them (default: manifests/)",
    )


def _output_args(p: argparse.ArgumentParser, *, command: bool = True) -> None:
    _either_side(
        p,
        "--json",
        action="store_true",
        command=command,
        default=False,
        help="machine-readable output",
    )


def _logging_args(p: argparse.ArgumentParser, *, command: bool = True) -> None:
    # Every mode and command logs.
    _either_side(
        p,
        "-v",
        "--verbose",
        action="store_true",
        command=command,
        default=False,
        help="log each step to stderr",
    )
    _either_side(
        p,
        "--log-format",
        choices=[f.value for f in LogFormat],
        command=command,
        default=LogFormat.TEXT.value,
        help="text (default) or json: one JSON object per line, for log collectors",
    )


def _either_side(
    p: argparse.ArgumentParser, *flags: str, command: bool, default: object, **kw: Any
) -> None:
    """An option taken before a command's name and after it.  On the top level it has its
    ``default``; on a command it has none (SUPPRESS), since a command's default would
    overwrite the value given before the command's name."""
    action = p.add_argument(*flags, default=argparse.SUPPRESS if command else default, **kw)
    if command:
        # Recorded so that usage checks know the command takes it: the top-level options a
        # command lacks are refused when given before its name.
        p.set_defaults(shared=(p.get_default("shared") or frozenset()) | {action.dest})


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `reconcile lease NAME [options] -- COMMAND...`: what follows `--` is the command's own,
    # split off here because argparse cannot place options before a trailing command.
    cut = words.index("--") if "--" in words else len(words)
    args = build_parser().parse_args(words[:cut])
    args.run = words[cut + 1 :]
    problem = usage_problem(args)
    if problem is not None:
        print(f"reconcile: {problem}", file=sys.stderr)
        return ExitCode.ERROR
    args.path = args.path or DEFAULT_MANIFESTS
    # A controller reports what it does; a one-shot command only its problems (or -v).
    logs.configure(
        logging.INFO if args.verbose or args.watch else logging.WARNING,
        LogFormat(args.log_format),
    )
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


# ----------------------------------------------------------------------- usage checks

# The top level's options as a user writes them, by their argparse ``dest``.  -v and
# --log-format are not here: every mode and command takes them.
_TOP_LEVEL = {
    "plan": "--plan",
    "apply": "--apply",
    "watch": "--watch",
    "path": "-f",
    "json": "--json",
    "detailed_exitcode": "--detailed-exitcode",
    "offline": "--offline",
    "locked": "--locked",
    "state": "--state",
    "budget_bytes": "--budget-bytes",
    "host": "--host",
    "port": "--port",
}

# The modes each option means something in, and, where it helps, what to do instead.
_MODES_OF: dict[str, tuple[tuple[str, ...], str]] = {
    "detailed_exitcode": (
        ("plan",),
        "an apply exits 0 when it converged and 1 when it did not",
    ),
    "json": (("plan", "apply"), "for JSON logs, use --log-format json"),
    "state": (("plan",), ""),
    "budget_bytes": (
        ("plan", "apply"),
        "a controller keeps to the manifest's retention.max_storage_usage_percent",
    ),
    "offline": (_MODES, ""),
    "locked": (_MODES, ""),
    "host": (("watch",), ""),
    "port": (("watch",), ""),
}


def usage_problem(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot run as given, or None.  An option that would be accepted
    and then ignored is a problem: the user would believe it took effect."""
    if args.run and args.command != "lease":
        return "only `lease` runs a command given after --"
    if args.command is not None:
        return _command_problem(args)
    return _mode_problem(args)


def _given(args: argparse.Namespace, dest: str) -> bool:
    value = getattr(args, dest, None)
    return value is not None and value is not False  # `--port 0` is given, and falsy


def _command_problem(args: argparse.Namespace) -> str | None:
    shared: frozenset[str] = getattr(args, "shared", frozenset())
    unused = [
        flag for dest, flag in _TOP_LEVEL.items() if dest not in shared and _given(args, dest)
    ]
    if unused:
        verb = "does" if len(unused) == 1 else "do"
        return f"{_listed(unused)} {verb} not apply to `reconcile {args.command}`"
    if args.command == "status" and args.status_file is not None and args.path is not None:
        return "status: give -f or --status-file, not both (-f only locates the status file)"
    if args.command == "status" and args.sources and (args.status_file or args.path):
        return "status: --from asks controllers; give it without -f or --status-file"
    if args.command == "request" and args.timeout is not None and not args.wait:
        return "request: --timeout only applies to --wait"
    return None


def _mode_problem(args: argparse.Namespace) -> str | None:
    mode = next((m for m in _MODES if getattr(args, m)), None)
    for dest, (modes, instead) in _MODES_OF.items():
        if mode not in modes and _given(args, dest):
            line = f"{_TOP_LEVEL[dest]} only applies to {_listed([f'--{m}' for m in modes])}"
            return f"{line}; {instead}" if instead else line
    if args.offline and args.state is not None:
        return "--offline does not apply with --state: a plan from a status file asks no hub"
    return None


def _listed(flags: list[str]) -> str:
    """``--plan, --apply and --watch``."""
    return " and ".join([", ".join(flags[:-1]), flags[-1]] if len(flags) > 1 else flags)


# ----------------------------------------------------------------------- dispatch


def _dispatch(args: argparse.Namespace) -> int:
    # Each command's module is imported when it runs, so a quick command such as `status`
    # never pays for importing huggingface_hub.
    if args.command == "schema":
        from controller.cli.commands import validate

        return validate.schema()
    if args.command == "serve":
        from controller.cli.commands import serve

        port = SERVE_PORT if args.port is None else args.port
        host = SERVE_HOST if args.host is None else args.host
        return serve.run(
            args.directory,
            host,
            port,
            verbose=args.verbose,
            upstream=args.upstream,
            max_bytes=args.max_bytes,
        )
    if args.command == "validate":
        from controller.cli.commands import validate

        return validate.validate(args.path)
    if args.command == "verify":
        from controller.cli.commands import verify

        return verify.run(args.path, args.models, full=args.full, as_json=args.json)
    if args.command == "request":
        from controller.cli.commands import request

        return request.run(
            args.path, args.name, wait=args.wait, timeout=args.timeout, as_json=args.json
        )
    if args.command == "use":
        from controller.cli.commands import use

        return use.run(
            args.path, args.name, generation_seconds=args.generation_seconds, as_json=args.json
        )
    if args.command == "status":
        from controller.cli.commands import status

        if args.sources:
            return status.run_fleet(args.sources, as_json=args.json)
        return status.run(args.path, args.status_file, as_json=args.json)
    if args.command == "wait":
        from controller.cli.commands import wait

        return wait.run(args.path, args.names, timeout=args.timeout)
    if args.command == "lock":
        from controller.cli.commands import lock

        return lock.run(args.path, args.upgrade)
    if args.command == "adopt":
        from controller.cli.commands import adopt

        return adopt.run(args.path, args.names, as_json=args.json)
    if args.command == "lease":
        from controller.cli.commands import lease

        return lease.run(args.path, args.name, args.run, ttl=args.ttl)
    if args.command in ("pause", "resume"):
        from controller.cli.commands import pause

        return pause.run(args.path, args.name, resume=args.command == "resume", as_json=args.json)
    return _run_mode(args)


def _run_mode(args: argparse.Namespace) -> int:
    if args.watch:
        from controller.cli.commands import watch

        return watch.run(
            args.path, host=args.host, port=args.port, locked=args.locked, offline=args.offline
        )
    if args.plan:
        from controller.cli.commands import plan

        return plan.run(
            args.path,
            as_json=args.json,
            detailed=args.detailed_exitcode,
            offline=args.offline,
            locked=args.locked,
            state_file=args.state,
            budget_bytes=args.budget_bytes,
        )
    if args.apply:
        from controller.cli.commands import apply

        return apply.run(
            args.path,
            as_json=args.json,
            offline=args.offline,
            locked=args.locked,
            budget_bytes=args.budget_bytes,
        )
    build_parser().print_help(sys.stderr)
    return ExitCode.ERROR

