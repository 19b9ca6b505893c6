"""One run of the agent: plugins loaded, checks run in their wrapper, the result judged and
written. ``config`` holds the run settings, ``target`` the ``--server`` URL, ``session`` the
pipeline measure → judge → render for one run.
"""
