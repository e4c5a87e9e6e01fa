"""blockgraph's desktop editor (Qt, PySide6) and command-line entry point.

Importing this package does not import Qt: headless commands (``serve``,
``info``) must run where no Qt runtime is installed.
"""
