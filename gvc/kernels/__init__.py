"""Device kernels (optional: used where Triton and a GPU are present; torch paths are the reference)."""
