"""Error types shared across hwnas.

`InputError` is raised for anything the user can fix (bad configuration, unknown space, corrupt
file). The CLI turns it into a one-line message on stderr and exit status 2.
"""


class InputError(ValueError):
    """A user-correctable problem with an input; its message names the bad value."""
