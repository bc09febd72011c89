"""The only place that finds, builds and runs ffmpeg: the binary, child processes, probing without ffprobe.

Everything in cht_lab that touches media goes through this package: one place decides which
ffmpeg runs, one place guarantees no child outlives its owner, and one place turns ffmpeg's
complaints into errors that name the file and the reason.
"""

from cht_lab.ffmpeg.binary import (
    ENV_VAR,
    FfmpegInfo,
    FfmpegNotFoundError,
    MediaError,
    cuda_usable,
    ffmpeg_info,
    find_ffmpeg,
)
from cht_lab.ffmpeg.probe import (
    AudioStream,
    MediaInfo,
    Packet,
    VideoHeader,
    VideoStream,
    framecrc_line,
    packet_from_row,
    packet_listing_args,
    probe,
    probe_video,
    read_header,
    video_header,
    video_packets,
)
from cht_lab.ffmpeg.process import FfmpegProcess, diagnose, grow_pipe, live_processes, run_ffmpeg

__all__ = ["ENV_VAR", "AudioStream", "FfmpegInfo", "FfmpegNotFoundError", "FfmpegProcess", "MediaError", "MediaInfo",
           "Packet", "VideoHeader", "VideoStream", "cuda_usable", "diagnose", "ffmpeg_info", "find_ffmpeg", "framecrc_line", "grow_pipe",
           "live_processes", "packet_from_row", "packet_listing_args", "probe", "probe_video", "read_header", "run_ffmpeg",
           "video_header", "video_packets"]
