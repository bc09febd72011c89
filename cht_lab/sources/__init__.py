"""Video sources: a file, a growing recording, cht's scene.sock, a URL; one protocol for all."""

from cht_lab.sources.annexb import AnnexBScanner, NalUnit, starts_access_unit
from cht_lab.sources.base import (
    SESSION_END_AFTER,
    SESSION_IDLE_TIMEOUT,
    LiveStream,
    Source,
    SourceBase,
    StateCallback,
    VideoFormat,
    probe_format,
    probe_recording,
    unix_address,
)
from cht_lab.sources.file import FileSource, UrlSource, is_url
from cht_lab.sources.growing import FollowSource
from cht_lab.sources.open import open_source
from cht_lab.sources.socket import SocketSource

__all__ = ["AnnexBScanner", "FileSource", "FollowSource", "LiveStream", "NalUnit", "SESSION_END_AFTER",
           "SESSION_IDLE_TIMEOUT", "SocketSource", "Source", "SourceBase", "StateCallback", "UrlSource",
           "VideoFormat", "is_url", "open_source", "probe_format", "probe_recording", "starts_access_unit",
           "unix_address"]
