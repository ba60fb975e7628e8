"""Bridge between GVC and the FFmpeg world: the ``ffmpeg`` binary and video files/pipes.

Submodules (imported on demand, this package import stays light):

* :mod:`ffmpeg_bridge.ffmpeg` -- locate and run the ``ffmpeg`` command-line tool.
* :mod:`ffmpeg_bridge.video_io` -- read and write RGB frames from/to y4m pipes and video files (PyAV).
* :mod:`ffmpeg_bridge.tracks` -- an input's audio/subtitle packets, demuxed (PyAV), and the ffmpeg remux that puts them beside a decoded video.
"""
