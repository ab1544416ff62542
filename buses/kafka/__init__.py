"""The Apache Kafka bus."""
