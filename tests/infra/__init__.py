"""Offline checks of the Azure deployment (azure.yaml, infra/**): parse, lint, settings and RBAC sync."""
