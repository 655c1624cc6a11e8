"""Adapters that plug botwire into agent frameworks through each framework's own interface.

Each module imports its framework, so import the one you use
(``from botwire.integrations.langgraph import BotwireStore``); each is installed
with its extra (``pip install 'botwire[langgraph]'``).
"""
