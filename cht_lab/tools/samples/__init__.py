"""Labeled synthetic screen recordings in cht's session layout (`cht-lab samples`).

The bundled samples are synthetic screen shares whose scene changes are known exactly.

Why synthetic: real screen recordings cannot be shipped (privacy, size) and their ground truth is
argued over. Here every picture comes from a seeded plan, so the labels are exact by construction,
the distractors (typing, cursor, clock, scrolling, video, webcam, spinner) sit in known
rectangles, and regenerating gives the same decoded pixels: text uses Pillow's built-in bitmap
font (no FreeType, no system fonts), shapes use integer rasterisation, RGB->YUV is integer
arithmetic done here (no swscale), and x264 runs single-threaded.

Frames are encoded the way cht's recorder does it: H.264 (libx264, no B-frames, yuv420p, a
keyframe every 2 s) in a fragmented MP4 with AAC audio, in a session directory named by its start
time. `twoseg` is a recorder restart: two video-only segments with a gap, and a standalone ADTS
`audio.aac` covering the whole session.

Conventions of the labels (labels.csv: time,end,kind,note): `time` is the global time of the first
frame that shows the new picture (frame_number / fps); `end` is set only for gradual events (the
first frame that shows the new picture fully). Every row is one event that should give exactly one
capture. The first frame of a recording is not an event; `twoseg`'s second segment starts on the
picture its first segment ended with.

Modules: draw (specs, drawing helpers, the _Screen timeline), slides/desktop/coding (one screen
each), audio (speech-like sound), render (encoding a spec or a benchmark clip), bundled (the
SAMPLES, where they live, generating them).
"""

from cht_lab.tools.samples.bundled import ENV_VAR, SAMPLES, generate, sample_dir, samples_root
from cht_lab.tools.samples.draw import SampleError
from cht_lab.tools.samples.render import render_screen_clip

__all__ = ["ENV_VAR", "SAMPLES", "SampleError", "generate", "render_screen_clip", "sample_dir", "samples_root"]
