"""The fleet: a Deployment's pods on TPU nodes, behind a Service/gateway, with cost."""
