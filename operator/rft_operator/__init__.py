"""The rft operator: the RFTRun API, its CRD, the planner and the kopf handlers."""

__version__ = "0.1.0"
