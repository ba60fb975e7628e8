"""One exception family for everything a user can get wrong.

The command-line tools catch :class:`GVCError` and print its message as a single line; anything else
is a bug and keeps its traceback.
"""


class GVCError(Exception):
    """Base class: bad input, bad parameters, damaged streams."""


class BitstreamError(GVCError):
    """The bitstream is truncated, corrupted or violates a limit of the spec."""


class InputError(GVCError):
    """An input file or pipe cannot be read as video (bad y4m, unsupported pixel format, missing file)."""


class ParameterError(GVCError):
    """A codec parameter is out of range or inconsistent."""


class PriorMismatchError(GVCError):
    """The stream was encoded with other prior weights than the ones available to the decoder."""


class LimitError(GVCError):
    """A stream asks for more work, memory or output than the decoder's limits allow (gvc.limits)."""
