"""Errors a user can act on. A stage prints their message as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or configuration: the message says what is wrong and how to fix it."""


class ParamError(UserError):
    """A value in params.yaml is missing, of the wrong type or out of range."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"params.yaml: {key}: {message}")
