"""Rendering, the last stage of measure → judge → render: words and numbers for the language
(``format``), the run report and terminal summary (``report``), the fleet report and CSV
(``fleet``), the shared inline SVG charts (``charts``) and the registry of output writers, all
writing through one atomic writer (``writers``). Nothing here decides pass or fail."""
