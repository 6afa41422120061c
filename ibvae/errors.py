"""The one exception type for mistakes a user can make (bad config, missing file, bad value).

Scripts catch it, print its message as one line on stderr and exit with code 2; programming
errors keep their traceback.
"""


class IbvaeError(ValueError):
    """A user-facing error: the message names the problem and what to do about it."""
