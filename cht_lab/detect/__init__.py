"""Scene detection: decode -> timeline -> score -> store scores -> decide -> capture, and the supervisor that runs it."""
