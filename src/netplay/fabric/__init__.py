"""Turning a topology into kernel objects (namespaces, veths, bridges,
addresses, routes, NAT, faults) and removing them again."""
