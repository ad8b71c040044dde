"""Errors whose message is meant for a person: what is wrong and what to do about it."""

import contextlib


class ConfigError(ValueError):
    """A parameter or model folder is wrong (raised at start-up)."""


class InputError(ValueError):
    """A request is wrong; the message names the image and the reason."""


class TimeBudgetError(RuntimeError):
    """A request ran past its time budget (``request_timeout``)."""


@contextlib.contextmanager
def exit_on_config_error(who: str):
    """Start-up with a configuration or model problem stops with one clear line, not a traceback."""
    try:
        yield
    except ConfigError as err:
        raise SystemExit(f"{who}: {err}") from None
