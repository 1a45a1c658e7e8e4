"""The prompt registry: named prompt templates with immutable, numbered versions and movable labels.

In the models layer so that the API, experiments and workflows can all name a prompt instead of sending text.
"""
