"""Deployment wiring: Prefect deployments and the demo task file (package data)."""
