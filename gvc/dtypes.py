"""Names of the arithmetic a prior's network computes in (no torch import: the CLI parser uses them).

The position in COMPUTE_DTYPES is the sequence header's ``compute_dtype`` id (docs/bitstream.md).
"""

COMPUTE_DTYPES = ("fp32", "bf16", "fp16")
DTYPE_CHOICES = ("auto", *COMPUTE_DTYPES)  # auto: bf16 on CUDA, fp32 elsewhere
