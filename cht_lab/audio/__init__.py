"""Audio: follow a recording's AAC track and cut it into pause-aware WAV chunks."""
