"""The fleet: agents that bridge a host's services to NATS, and the hub's view of all of them."""
