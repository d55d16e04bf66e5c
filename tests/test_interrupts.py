"""A Ctrl-C whose KeyboardInterrupt Python dropped (e.g. raised inside a __del__) still stops the
work and ends the command with 130."""

from __future__ import annotations

import os
import signal

import pytest

from featgeom import interrupts


@pytest.fixture(autouse=True)
def terminal_sigint():
    """SIGINT with Python's default handler, as under a terminal (a shell that started the tests
    in the background, as CI does, passes SIGINT down ignored); restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _sigint_swallowed() -> None:
    """SIGINT to this process while something swallows the KeyboardInterrupt, as a __del__ does."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # give the handler a bytecode boundary to run at
            pass
    except KeyboardInterrupt:
        pass


def test_a_dropped_interrupt_is_remembered_and_raised_at_the_next_safe_point():
    interrupts.install()
    try:
        assert not interrupts.interrupted()
        _sigint_swallowed()
        assert interrupts.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_interrupted()
    finally:
        interrupts.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_install_forgets_an_earlier_interrupt_and_leaves_an_ignored_sigint_ignored():
    interrupts.install()
    _sigint_swallowed()
    assert interrupts.interrupted()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starting a background job (the fixture restores it)
    interrupts.install()
    assert not interrupts.interrupted() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    interrupts.uninstall()  # not ours: left ignored
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_uninstall_forgets_the_interrupt_so_later_library_calls_run():
    """After a command has acted on a Ctrl-C, code run later in the same process (a training loop's
    raise_if_interrupted, say, in a notebook or the next test) must not stop for it."""
    interrupts.install()
    _sigint_swallowed()
    assert interrupts.interrupted()
    interrupts.uninstall()
    assert not interrupts.interrupted()
    interrupts.raise_if_interrupted()  # raises nothing


def test_a_command_whose_interrupt_was_dropped_exits_130(monkeypatch, capsys):
    from featgeom.cli import exit_code

    monkeypatch.setattr("featgeom.experiments.analyses.analysis_table", lambda: (_sigint_swallowed(), [("x", "sae", "d")])[1])
    assert exit_code(["analyses"]) == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


class _Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass


def test_an_interrupt_inside_a_finalizer_is_not_raised_there_but_remembered(capfd):
    import gc

    interrupts.install()
    try:
        obj = _Finalized()
        del obj
        gc.collect()
        assert interrupts.interrupted()
        assert "Exception ignored" not in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_interrupted()
    finally:
        interrupts.uninstall()
