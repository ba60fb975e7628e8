"""Names of the arithmetic a prior's network computes in, from the sequence header's ``compute_dtype`` enum
(docs/bitstream.md); the position in COMPUTE_DTYPES is the enum value."""

from container.bitstream import COMPUTE_DTYPES as _WIRE_DTYPES

COMPUTE_DTYPES = tuple(sorted(_WIRE_DTYPES, key=_WIRE_DTYPES.get))  # fp32, bf16, fp16
DTYPE_CHOICES = ("auto", *COMPUTE_DTYPES)  # auto: bf16 on CUDA, fp32 elsewhere
