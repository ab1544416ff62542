"""The NATS JetStream bus."""
