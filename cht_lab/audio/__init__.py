"""Audio: follow a recording's AAC track and cut it into pause-aware WAV chunks.

decode (sources, ffmpeg command) -> extractor (the worker) -> writer (WAV + index rows);
offline (`extract_audio`) runs the same worker to the end; chunking cuts PCM at pauses.
"""
