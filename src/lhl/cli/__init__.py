"""Command-line interface: ``lhl run``, ``lhl bench``, ``lhl sweep``, ``lhl pretrain``, ``lhl eval``, ``lhl predict``,
``lhl compare``, ``lhl report``, ``lhl list``, ``lhl data preview``, ``lhl data check``, ``lhl data render``.

A user's mistake or an environment fault (:class:`~lhl.errors.LhlError`, a file-system error)
prints one line, ``lhl: error: …``, and exits non-zero (2 for usage and configuration errors, 130/143
after SIGINT/SIGTERM); ``--debug`` or ``LHL_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

from lhl.cli.commands import HANDLERS
from lhl.cli.parser import build_parser
from lhl.engine.launch import record_exit_status
from lhl.errors import LhlError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("LHL_DEBUG", "") not in ("", "0")
    try:
        code = HANDLERS[args.command](args)
    except LhlError as exc:
        code = exc.exit_code
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun process 0 speaks for all
            _report(exc, str(exc), exc.exit_code, debug)
        elif debug:
            traceback.print_exception(exc)
        record_exit_status(code)
        return code
    except OSError as exc:  # the file system: permissions, a full disk, a missing file
        code = 2 if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.EISDIR) else 1
        where = f"{exc.filename}: " if exc.filename else ""
        return _report(exc, f"{where}{exc.strerror or exc}", code, debug)
    except KeyboardInterrupt as exc:
        return _report(exc, "interrupted", 130, debug)
    record_exit_status(code)
    return code


def _report(exc: BaseException, message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    message = " ".join(message.split()) or type(exc).__name__  # always one line
    print(f"lhl: error: {message}", file=sys.stderr)
    return code

