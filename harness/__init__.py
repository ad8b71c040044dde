"""Tooling shared by the tests and the measurement scripts (not part of the served product).

- ``servers``: start the production server or ``hub serving start`` on a free port, wait for it;
- ``stats``: one percentile definition, RSS of a process tree sampled over time;
- ``testimages``: images with known text rendered with a CJK font;
- ``photos``: photo folders, rendered pages, variants of distinct sizes;
- ``load``: concurrent HTTP load, latency percentiles, errors by kind, texts;
- ``inproc``: the in-process pipeline timed in fresh processes (one or several at once);
- ``rapidocr``: RapidOCR timed in another Python; ``hub``: ``hub install`` of the four modules;
- ``report``: machine, git revision, markdown tables, texts compared; ``rss``: RSS samples as a report.
"""
