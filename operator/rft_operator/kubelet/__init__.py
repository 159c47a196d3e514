"""The process kubelet: runs the pods of Deployments and Jobs as local processes.

It plays, on one machine and without containers, the parts of a cluster that turn the
operator's objects into running work — the Deployment, Job and garbage-collection
controllers, a minimal queue admission, and the kubelet — and writes back the status a
cluster would (ready replicas, Job conditions, each container's termination message).
What each container runs is exactly its manifest's command, args and env; `container`
explains how mounts, Service names and pod addresses are mapped onto this machine.
It is not a cluster: no isolation, no resource limits, no scheduling.
"""

from .container import ContainerConfigError, Launch, Node, container_launch
from .controller import ProcessKubelet

__all__ = ["ContainerConfigError", "Launch", "Node", "ProcessKubelet", "container_launch"]
