"""The session index: frames, scores and audio chunks as Parquet tables in a session directory."""
