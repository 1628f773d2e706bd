"""The sink's one error: something it cannot do (bind a port, find mitmdump), said in one line."""


class SinkError(RuntimeError):
    """The sink could not start or run; the message is one line naming what and why."""
