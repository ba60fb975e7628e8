"""The frame writer the decode tests hand to ``decode_stream``: it keeps every frame in memory."""


class FrameSink:
    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame)

    def close(self):
        pass
