"""Tests of the Helm chart, the operator's RBAC and the container images (issue 8)."""
