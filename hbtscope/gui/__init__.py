"""The live dashboard (PyQt5 + pyqtgraph): ``hbtscope gui [--setup FILE]``.

The window runs on the same :class:`~hbtscope.setup.Setup`, measurements and
:func:`~hbtscope.procedures.runner.run_procedure` as the command line. A run executes in a worker
``QThread``; its events reach the GUI thread as Qt signals (:mod:`hbtscope.gui.bridge`), never by
polling files. Only the command line imports this package (import-linter contract ``gui-top``).
See docs/gui.md.
"""
