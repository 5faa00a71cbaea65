"""How every command's failure reaches the user: one ``error: ...`` line on stderr and an
exit code, never a traceback. 2: bad input (a file, a flag, a query); 1: a runtime failure
(a service that cannot be reached, documents that failed); 130: interrupted.

Commands raise a :class:`~ie_service.errors.ServiceError`, reported with its ``exit_code``
(2 for a :class:`~ie_service.errors.UserInputError`, 1 for a
:class:`~ie_service.errors.RuntimeFailure`); a few library exceptions that always mean bad
input (a missing file or folder, no permission, a pydantic validation error, input nested
too deeply to parse) are reported the same way, and any other ``OSError`` (a disk full while
writing) as a runtime failure. Anything else is a bug: one line naming it, exit 1, and the
traceback only with ``IE_SERVICE_TRACEBACK=1``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..errors import EXIT_FAILURE, EXIT_USAGE, ServiceError, one_line

# our own messages may name a fix with two paths in it: never cut those short
USER_MESSAGE_LIMIT = 2000

TRACEBACK_ENV = "IE_SERVICE_TRACEBACK"


def error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
    what = exc.strerror or one_line(exc)
    return f"{where}: {what}" if where else what


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace,
        usage_error: Callable[[str], object]) -> int:
    """``command(args)``'s exit code, failures turned into one line. ``usage_error``: the
    command's ``parser.error`` (for :class:`~ie_service.cli.common.UsageError`)."""
    import httpx
    from pydantic import ValidationError

    from .common import UsageError

    try:
        return command(args)
    except UsageError as exc:
        usage_error(one_line(exc))  # argparse: usage + one error line, exit 2
        raise
    except ServiceError as exc:
        return error(one_line(exc, limit=USER_MESSAGE_LIMIT), exc.exit_code)
    except httpx.TransportError as exc:
        url = exc.request.url if exc._request is not None else "the service"
        return error(f"cannot reach {url}: {type(exc).__name__}: {one_line(exc)}", EXIT_FAILURE)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        return error(one_line(problems), EXIT_USAGE)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
            FileExistsError) as exc:
        return error(_os_error(exc), EXIT_USAGE)
    except OSError as exc:  # a write that failed (disk full, an I/O error): the machine, not the input
        return error(_os_error(exc), EXIT_FAILURE)
    except RecursionError:  # a parser's answer to a JSON value nested thousands of levels deep
        return error("an input is nested too deeply to read (a JSON value thousands of levels deep?)",
                     EXIT_USAGE)
    except KeyboardInterrupt:
        return error("interrupted", 130)
    except Exception as exc:  # a bug: say what, keep the traceback for who asks
        if os.environ.get(TRACEBACK_ENV):
            raise
        return error(f"internal error: {type(exc).__name__}: {one_line(exc)} "
                     f"(set {TRACEBACK_ENV}=1 for the traceback)", EXIT_FAILURE)
