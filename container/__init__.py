"""Container formats for GVC streams (Matroska mapping, GVC bitstream framing)."""
