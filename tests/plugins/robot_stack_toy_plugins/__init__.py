"""Plug-ins as another pip package would ship them: a conditioning kind and a policy, registered through the
entry points of the dist-info beside this folder (put tests/plugins on PYTHONPATH). Tests only."""
