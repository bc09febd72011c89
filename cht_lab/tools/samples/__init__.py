"""Labeled synthetic screen recordings in cht's session layout (`cht-lab samples`)."""

from cht_lab.tools.samples.render import (  # noqa: F401
    ENV_VAR,
    SAMPLES,
    SampleError,
    generate,
    render_screen_clip,
    sample_dir,
    samples_root,
)

__all__ = ["ENV_VAR", "SAMPLES", "SampleError", "generate", "render_screen_clip", "sample_dir", "samples_root"]
