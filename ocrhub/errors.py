"""Errors whose message is meant for a person: what is wrong and what to do about it."""

import contextlib


class ConfigError(ValueError):
    """A parameter or model folder is wrong (raised at start-up)."""


class ServiceError(Exception):
    """A request's failure, with the envelope status and HTTP code that answer it.

    Statuses are PaddleHub's own: ``101`` request or prediction error, ``111`` module not available,
    ``112`` not a JSON POST. ``retry_after`` (seconds) is sent as the ``Retry-After`` header."""

    status, http, retry_after = "101", 500, None


class InputError(ServiceError, ValueError):
    """A request is wrong; the message names the image and the reason."""

    http = 400


class TimeBudgetError(ServiceError):
    """A request ran past its time budget (``request_timeout``)."""

    http = 504


class NotJsonError(ServiceError):
    status, http = "112", 400


class BodyTooLargeError(ServiceError):
    http = 413


class SlowClientError(ServiceError):
    """The client did not send its whole body within ``body_timeout``."""

    http = 408


class UnknownModuleError(ServiceError):
    status, http = "111", 404


class UnavailableError(ServiceError):
    """Not now, maybe soon: still loading, or every worker busy and the queue full."""

    status, http, retry_after = "111", 503, 1


class WorkerDiedError(ServiceError):
    """The inference worker holding the request died (it is replaced)."""


class AbandonedError(ServiceError):
    """The client went away before its answer; its work was stopped (no one reads this answer)."""

    http = 499  # nginx's "client closed request"


class EngineError(ServiceError, RuntimeError):
    """The inference engine failed on an input and left no fresh outputs for it (ocrhub.predictor)."""


@contextlib.contextmanager
def exit_on_config_error(who: str):
    """Start-up with a configuration or model problem stops with one clear line, not a traceback."""
    try:
        yield
    except ConfigError as err:
        raise SystemExit(f"{who}: {err}") from None
