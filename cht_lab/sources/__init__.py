"""Video sources: a file, a growing recording, cht's scene.sock, a URL; one protocol for all."""
