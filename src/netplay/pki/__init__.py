"""The playground's CA: its certificates, where they are kept, and the hosts' trust in it."""

from netplay.pki._store import DEMO_USER, Plan, Store, Wanted, bundles, trust_targets, wanted

__all__ = ["DEMO_USER", "Plan", "Store", "Wanted", "bundles", "trust_targets", "wanted"]
