"""Prefect flows composing the factory library: rebuild, watch, and their deployments.

flows/ calls factory/, never the reverse. Import these modules only after
``flows.server.ensure_server`` has pointed PREFECT_API_URL at a server.
"""
