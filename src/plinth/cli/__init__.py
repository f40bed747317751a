"""The `plinth` command line: one module per top-level command (`runs.py` holds `plinth runs`),
wired together in `main.py`; the options they share are in `options.py`, how they print in
`render.py`."""
