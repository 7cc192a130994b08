"""Kubernetes and observability: WarrantPolicy resources, Hubble-shaped flow records,
the flow store and Prometheus metrics."""
