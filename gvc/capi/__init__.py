"""libgvc: the decoder behind a C ABI (gvc.h), built with cffi's embedding mode (docs/capi.md).

``python -m gvc.capi build -o DIR`` writes DIR/libgvc.so and DIR/gvc.h; gvc.capi.embedded is the
Python side the library runs.
"""
