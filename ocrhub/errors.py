"""Errors whose message is meant for a person: what is wrong and what to do about it."""


class ConfigError(ValueError):
    """A parameter or model folder is wrong (raised at start-up)."""


class InputError(ValueError):
    """A request is wrong; the message names the image and the reason."""


class TimeBudgetError(RuntimeError):
    """A request ran past its time budget (``request_timeout``)."""
