"""Ctrl-C that cannot be lost: a SIGINT handler that remembers the interrupt as well as raising it.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives; if that is inside
a ``__del__`` or a weakref callback, the exception is printed as "Exception ignored" and dropped,
and the command would run on to the end (measured: a CI run's SIGINT landed in a regex object's
``__del__`` and a 50M-sample training carried on). :func:`install` (called by the CLI) records
every SIGINT; long loops call :func:`raise_if_interrupted` at safe points (each training step, each
stored job) and the CLI checks :func:`interrupted` when a command returns, so a dropped
KeyboardInterrupt still stops the work and exits 130.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_interrupted = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    """Remember the interrupt; raise KeyboardInterrupt unless the main thread is inside a
    ``__del__`` (there Python would drop it with an "Exception ignored" traceback: the next
    :func:`raise_if_interrupted` or the CLI's check ends the command instead)."""
    _interrupted.set()
    if not _in_finalizer(frame):
        raise KeyboardInterrupt


def _in_finalizer(frame: Any) -> bool:
    """Whether ``frame`` or one of its callers is a ``__del__`` method."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def install() -> None:
    """Handle SIGINT with :func:`_on_sigint` and forget earlier interrupts; only in the main thread,
    and only where SIGINT has Python's default handler (an ignored SIGINT stays ignored)."""
    _interrupted.clear()
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def uninstall() -> None:
    """Restore Python's default SIGINT handler if :func:`install` set ours, and forget the interrupt
    (the command that installed it has acted on it): library code run later in the same process,
    such as a training loop's :func:`raise_if_interrupted`, must not stop for a stale Ctrl-C."""
    _interrupted.clear()
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def interrupted() -> bool:
    """Whether a SIGINT arrived since :func:`install`."""
    return _interrupted.is_set()


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a SIGINT arrived (its own KeyboardInterrupt may have been dropped)."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
