"""Tooling shared by the tests and the measurement scripts (not part of the served product).

- ``servers``: start the production server or ``hub serving start`` on a free port, wait for it;
- ``stats``: one percentile definition, RSS of a process tree sampled over time;
- ``testimages``: images with known text rendered with a CJK font.
"""
