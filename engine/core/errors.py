"""The one error type a person sees.

Anything raised as a `LabError` carries a message a person can act on ("hidden_size must be at
least 1, got 0"). The CLI prints it and exits with status 2; a page shows it beside the control.
Any other exception is a bug and is reported as one.
"""


class LabError(Exception):
    """A problem with the person's input, data or files, explained in plain words."""


class ConfigError(LabError):
    """A hyperparameter out of range, or a combination that cannot work."""


class DataError(LabError):
    """A dataset that is missing, corrupt, or an upload that cannot be used."""


class CheckpointError(LabError):
    """A checkpoint that is missing, corrupt, or made for a different model."""
