"""The one exception type that means "the user gave us something we cannot use".

Why: the CLI turns it into a single clear line and a non-zero exit instead of a traceback,
and the server turns its serving twin into a 400; everything else is a bug and should show
its traceback.
"""


class UserError(Exception):
    """Bad input or configuration, explained in the message; never a bug."""
