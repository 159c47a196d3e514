"""Helpers shared by the tests and the benchmarks (no tests here): the Kubernetes
emulator's resource declarations and a stand-in kubelet."""
