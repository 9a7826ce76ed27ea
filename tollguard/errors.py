"""The project's exceptions: one base, so callers can catch every tollguard error at once."""


class TollguardError(Exception):
    """Base of every error tollguard raises on purpose."""


class RejectError(TollguardError):
    """A CDR line that cannot be parsed or validated; ``reason`` says why in one line.

    Parameters
    ----------
    reason : str
        One human sentence naming the field, the value and what was expected.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RulesError(TollguardError):
    """An invalid rules file; ``line`` and ``field`` point at the first fault.

    Parameters
    ----------
    message : str
        What is wrong, e.g. "must be greater than 0, got -5".
    field : str
        Dotted path of the field at fault, e.g. ``detectors.autodialer.attempts_per_min``.
    line : int or None
        1-based line in the YAML file, when known.
    """

    def __init__(self, message: str, field: str = "", line: int | None = None, path: str = "") -> None:
        where = f"{path}:{line}: " if line is not None else (f"{path}: " if path else "")
        at = f"{field}: " if field else ""
        super().__init__(f"{where}{at}{message}")
        self.message = message
        self.field = field
        self.line = line
        self.path = path


class VerdictError(TollguardError):
    """A verdict that cannot be applied: unknown suspension, or one already closed."""
