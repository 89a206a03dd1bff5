"""``medground`` command line.  Thin: parse, call the library, print.

User errors (:class:`medground.errors.MedgroundError`) become one line on stderr and
exit status 2; other failures print a one-line summary (set ``MEDGROUND_DEBUG=1`` for
the traceback) and exit 1.
"""

from __future__ import annotations

import os
import sys

from ..errors import MedgroundError
from . import (  # noqa: F401  (each module registers its commands)
    data_convert,
    data_phantom,
    data_validate,
    demo,
    evaluate,
    model,
    predict,
    rewards,
    segment,
    semantic,
    serve,
    train,
)
from ._apps import app


def main(argv: list[str] | None = None) -> None:
    from ..progress import configure_library_bars, set_quiet

    configure_library_bars()  # not a terminal: other libraries' bars redraw every few seconds, not 10 times a second
    try:
        app(args=argv, prog_name="medground")
    except MedgroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted; finished work is kept, rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, no raw traceback
        if os.environ.get("MEDGROUND_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set MEDGROUND_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
    finally:
        set_quiet(False)  # --quiet lasts one command (main may be called again in the same process)
