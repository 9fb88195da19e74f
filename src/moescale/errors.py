"""The one exception type for mistakes a user can make (bad file, bad flag, infeasible budget).

The CLI turns a :class:`MoescaleError` into one line on stderr and exit status 2; any other
exception is a bug and keeps its traceback.
"""


class MoescaleError(ValueError):
    """A user-caused error whose message says what to change."""
