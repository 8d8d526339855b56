"""Saved SQL for analysts: the ``.sql`` files in this folder, shipped with the package,
and the runner that binds their parameters (``runner``).
"""
