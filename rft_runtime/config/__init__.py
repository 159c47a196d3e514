"""Pydantic models shared by the operator and the jobs: spec sections and job configs."""
