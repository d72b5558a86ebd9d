"""The one exception type users see.

Anything that is the user's to fix (a missing dataset, a corrupt checkpoint, a bad flag value) is raised as
`GATError` with a message that says what is wrong and what to do. Command-line entry points catch it and print
the message as a single line, never a traceback.
"""


class GATError(Exception):
    """A problem the user can fix; `str(error)` is a complete one-line explanation."""
