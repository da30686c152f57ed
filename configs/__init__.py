"""Configs: plain Python dicts. ``base.py`` holds every default; the others import it."""
