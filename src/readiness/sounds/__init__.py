"""Sound files the audio checks play (package data, read through importlib.resources)."""
