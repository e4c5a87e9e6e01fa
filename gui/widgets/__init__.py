"""Docks, dialogs and small widgets around the canvas."""
